"""Whole-audio endpoints on a real uvicorn with the CPU engine: MP4 download and progressive HLS.

The MP4 is checked like a viewer's copy: ffprobe (H.264 + AAC, duration = audio ± 1 frame), then
decoded frame by frame and re-measured with MediaPipe: the inner-lip gap must follow the speech's
loudness. The progressive playlist must end and its segments add up to the audio's duration.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from hls.playlist import parse_media_playlist
from server.app import create_app
from server.settings import Settings
from tests.support.api import wait_status
from tests.support.media import wav_bytes
from tests.support.servers import live_server

pytestmark = pytest.mark.slow
SECONDS = 4.0
MAX_AUDIO_S = 20.0
MAX_AUDIO_BYTES = 2_000_000


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    storage = tmp_path_factory.mktemp("batch")
    settings = Settings(
        storage_dir=storage, static_dir=None, max_sessions=4,
        max_batch_audio_seconds=MAX_AUDIO_S, max_audio_file_bytes=MAX_AUDIO_BYTES,
    )  # fmt: skip
    with live_server(create_app(settings)) as url:
        yield url


@pytest.fixture(scope="module")
def speech(sample_speech_path: Path) -> tuple[np.ndarray, int]:
    pcm, rate = sf.read(sample_speech_path, dtype="float32")
    return pcm[: int(rate * SECONDS)], rate


def _post(url: str, path: str, image: bytes, audio: bytes, **fields) -> httpx.Response:
    with httpx.Client(base_url=url, timeout=120) as c:
        return c.post(
            path,
            files={"image": ("face.jpg", image, "image/jpeg"), "audio": ("a.wav", audio, "audio/wav")},
            data={k: str(v) for k, v in fields.items()},
        )


def _mouth_gaps(mp4: Path) -> np.ndarray:
    import av

    from models.face import FaceLandmarker
    from models.face.measure import mouth_opening

    landmarker = FaceLandmarker()
    gaps = []
    with av.open(str(mp4)) as c:
        for frame in c.decode(video=0):
            img = frame.to_ndarray(format="rgb24")
            lms = landmarker.mesh(img)
            assert lms is not None, "face lost in a decoded frame"
            gaps.append(mouth_opening(lms))
    return np.array(gaps)


def test_audio_driven_returns_mp4_with_speech_and_moving_lips(
    server, speech, sample_face_path, tmp_path, probe
):
    pcm, rate = speech
    t0 = time.monotonic()
    r = _post(server, "/api/audio-driven", sample_face_path.read_bytes(), wav_bytes(pcm, rate), seed=7)
    wall = time.monotonic() - t0
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "video/mp4"
    out = tmp_path / "out.mp4"
    out.write_bytes(r.content)
    streams = {s["codec_type"]: s for s in probe(out)["streams"]}
    assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "aac"
    assert streams["video"]["avg_frame_rate"] == "25/1"
    video_s = float(streams["video"]["duration"])
    assert abs(video_s - SECONDS) <= 0.04 + 1e-6, video_s
    assert abs(float(streams["audio"]["duration"]) - video_s) <= 0.045
    speed = float(r.headers["x-render-speed"])
    print(
        f"batch {SECONDS} s clip: render {r.headers['x-render-seconds']} s ({speed}x), request {wall:.2f} s"
    )
    assert speed > 1.0  # faster than real time on the CPU engine

    gaps = _mouth_gaps(out)
    assert len(gaps) == round(SECONDS * 25)
    spf = rate // 25
    n = len(gaps)
    padded = np.zeros(n * spf, np.float32)
    padded[: min(len(pcm), n * spf)] = pcm[: n * spf]
    rms = np.sqrt((padded.reshape(n, spf) ** 2).mean(axis=1))
    corr = float(np.corrcoef(gaps, rms)[0, 1])
    print(f"r(decoded mouth gap, loudness) = {corr:.3f}")
    assert corr >= 0.5, corr


def test_stream_playlist_grows_and_ends_with_the_audio_duration(
    server, speech, sample_face_path, tmp_path, probe
):
    pcm, rate = speech
    t0 = time.monotonic()
    r = _post(server, "/api/audio-driven/stream", sample_face_path.read_bytes(), wav_bytes(pcm, rate))
    assert r.status_code == 200, r.text
    info = r.json()
    assert info["status"] == "success" and info["hls_url"] == f"/hls/{info['session_id']}/playlist.m3u8"
    sid = info["session_id"]
    with httpx.Client(base_url=server, timeout=30) as c:
        first = None
        while time.monotonic() - t0 < 10:
            p = c.get(info["hls_url"])
            if p.status_code == 200 and ".ts" in p.text:
                first = time.monotonic() - t0
                break
            time.sleep(0.02)
        assert first is not None
        print(f"progressive: first segment {first:.2f} s after the request was sent")
        assert first < 3.0  # ~2 s target; the request includes upload and face analysis
        st = wait_status(c, sid, "complete", 60)
        assert st["status"] == "complete", st
        assert st["playlist_ready"] is True and st["segments"] == round(SECONDS)
        text = c.get(info["hls_url"]).text
        assert "#EXT-X-PLAYLIST-TYPE:EVENT" in text and text.rstrip().endswith("#EXT-X-ENDLIST")
        total = sum(s.duration for s in parse_media_playlist(text))
        assert abs(total - SECONDS) <= 0.05, total
        feed = c.post(
            "/api/audio-driven/chunked/feed",
            data={"session_id": sid},
            files={"audio_chunk": ("c", b"\0" * 3200)},
        )
        assert feed.status_code == 409  # all its audio came with the request
        rec = c.get(f"/api/audio-driven/chunked/session/{sid}/recording.mp4")
        assert rec.status_code == 200
        (tmp_path / "rec.mp4").write_bytes(rec.content)
        fmt = probe(tmp_path / "rec.mp4")["format"]
        assert abs(float(fmt["duration"]) - SECONDS) <= 0.1
        assert c.delete(f"/api/audio-driven/chunked/session/{sid}").status_code == 200
        assert c.get(info["hls_url"]).status_code == 404


def _bad(server, path, image, audio, **fields) -> httpx.Response:
    return _post(server, path, image, audio, **fields)


@pytest.mark.parametrize("path", ["/api/audio-driven", "/api/audio-driven/stream"])
def test_bad_whole_audio_requests_get_documented_4xx(server, speech, sample_face_path, path):
    pcm, rate = speech
    face = sample_face_path.read_bytes()
    good = wav_bytes(pcm[: rate // 2], rate)
    r = _bad(server, path, face, good, nfe=99)
    assert r.status_code == 422 and "nfe" in r.json()["message"]
    r = _bad(server, path, face, good, pose_style="[1, 2]")
    assert r.status_code == 422 and "pose_style" in r.json()["message"]
    r = _bad(server, path, face, b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    assert r.status_code == 400, r.text
    long = np.zeros(int(16000 * (MAX_AUDIO_S + 5)), np.float32)
    r = _bad(server, path, face, wav_bytes(long, 16000))
    assert r.status_code == 413 and "limit" in r.json()["message"], r.text
    r = _bad(server, path, face, b"\0" * (MAX_AUDIO_BYTES + 10))
    assert r.status_code == 413, r.text
    buf = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (320, 320), (128, 128, 128)).save(buf, "PNG")
    r = _bad(server, path, buf.getvalue(), good)
    assert r.status_code == 422 and "face" in r.json()["message"].lower(), r.text
    with httpx.Client(base_url=server, timeout=30) as c:
        r = c.post(path, files={"audio": ("a.wav", good)})
    assert r.status_code == 422 and "image" in r.json()["message"]


def test_cors_allows_post_and_delete_only_for_listed_origins(server, tmp_path):
    """Default: same origin only (a foreign page's preflight is refused); ``cors_origins`` lists
    the pages that may call the API cross-origin, without credentials (issue 13)."""
    from tests.support.processes import probe_app

    preflight = {"Origin": "http://example.org", "Access-Control-Request-Method": "POST"}
    with httpx.Client(base_url=server, timeout=10) as c:
        r = c.options("/api/audio-driven/chunked/init", headers=preflight)
        assert "access-control-allow-origin" not in r.headers
    with probe_app(tmp_path, cors_origins="http://example.org") as (c, _, _):
        for method in ("POST", "DELETE"):
            r = c.options(
                "/api/audio-driven/chunked/init",
                headers={**preflight, "Access-Control-Request-Method": method},
            )
            assert r.status_code == 200, r.text
            assert method in r.headers["access-control-allow-methods"]
            assert r.headers["access-control-allow-origin"] == "http://example.org"
            assert "access-control-allow-credentials" not in r.headers
