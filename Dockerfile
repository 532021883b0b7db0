# facestream on the built-in CPU engine. Build: docker build -t facestream .
# Run:   docker run --rm -p 9999:9999 --stop-timeout 30 facestream
# (--stop-timeout: on SIGTERM the server ends every live playlist and stops its ffmpegs, up to 20 s.)
# Liveness: the HEALTHCHECK below (/health). Readiness for a load balancer: GET /ready (503 when full).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    FACESTREAM_HOST=0.0.0.0 FACESTREAM_PORT=9999 FACESTREAM_STORAGE_DIR=/data \
    FACESTREAM_LOG_FORMAT=json

WORKDIR /app
COPY requirements.txt ./
# mediapipe goes in without its declared deps (jax, GUI OpenCV): see docs/DEPENDENCIES.md
RUN pip install -r requirements.txt && pip install --no-deps mediapipe==0.10.21

COPY pyproject.toml README.md chunked_streaming_client.py ./
COPY server ./server
COPY models ./models
COPY hls ./hls
COPY static ./static
COPY assets ./assets
RUN pip install --no-deps -e . \
    && useradd --create-home --uid 10001 facestream \
    && mkdir -p /data && chown facestream /data
USER facestream

EXPOSE 9999
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9999/health', timeout=2).status == 200 else 1)"
CMD ["facestream", "serve"]
