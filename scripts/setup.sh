#!/usr/bin/env bash
# Creates .venv and installs facestream with pinned dependencies. Idempotent: a stamp keyed on the
# requirement files' hash skips the install when nothing changed.
#   scripts/setup.sh          runtime (server + built-in CPU engine)
#   scripts/setup.sh --neural runtime + the IMTalker engine (torch, transformers)
#   scripts/setup.sh --dev    all of it + test tools
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv

# levels: each includes the ones before it
case "${1:-}" in
  --dev) levels="requirements requirements-neural requirements-dev" ;;
  --neural) levels="requirements requirements-neural" ;;
  *) levels="requirements" ;;
esac
req="$(echo "$levels" | awk '{print $NF}').txt"
hash=$(cat requirements*.txt pyproject.toml scripts/setup.sh | sha1sum | cut -c1-12)
stamp=".venv/.stamp-$hash-$(basename "$req" .txt)"

# pip on this image warns about an absent local index directory; hide only that line.
pipq() { .venv/bin/python -m pip install -q "$@" 2> >(grep -v "is ignored" >&2); }

if [ ! -f "$stamp" ]; then
  pipq --upgrade pip
  pipq -r "$req"
  # mediapipe 0.10.21 is the last release that ships the face detection and face-mesh models
  # inside the wheel. Its metadata also pulls jax and the GUI build of OpenCV (needs libGL);
  # the face solutions we use need neither, so it goes in without its declared deps.
  pipq --no-deps mediapipe==0.10.21
  pipq --no-deps -e .
  .venv/bin/python -c "import mediapipe, cv2, pocketsphinx, fastapi, imageio_ffmpeg, soxr"
  for l in $levels; do touch ".venv/.stamp-$hash-$l"; done
fi
