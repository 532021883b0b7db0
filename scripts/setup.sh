#!/usr/bin/env bash
# Creates .venv and installs facestream with pinned dependencies. Idempotent: a stamp keyed on the
# requirement files' hash skips the install when nothing changed.
#   scripts/setup.sh          runtime only
#   scripts/setup.sh --neural runtime + the IMTalker engine (torch, transformers)
#   scripts/setup.sh --dev    all of it + test tools
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
req=requirements.txt
case "${1:-}" in
  --dev) req=requirements-dev.txt ;;        # + neural engine + test tools
  --neural) req=requirements-neural.txt ;;  # + torch/transformers for --engine imtalker
esac
stamp=".venv/.facestream-$(cat requirements*.txt pyproject.toml | sha1sum | cut -c1-12)-$(basename $req .txt)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
  .venv/bin/python -m pip install -q -r "$req" 2>&1 | grep -v "is ignored" || true
  # mediapipe 0.10.21 is the last release that ships the face detection and face-mesh models
  # inside the wheel. Its metadata also pulls jax and the GUI build of OpenCV (needs libGL);
  # the face solutions we use need neither, so it is installed without its declared deps.
  .venv/bin/python -m pip install -q --no-deps mediapipe==0.10.21 2>&1 | grep -v "is ignored" || true
  .venv/bin/python -m pip install -q --no-deps -e . 2>&1 | grep -v "is ignored" || true
  .venv/bin/python -c "import mediapipe, cv2, pocketsphinx, fastapi, imageio_ffmpeg"
  rm -f .venv/.facestream-*; touch "$stamp"
fi
