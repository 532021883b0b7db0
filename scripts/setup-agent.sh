#!/usr/bin/env bash
# Creates .venv-agent: facestream installed the way an agent installs it, `pip install ./[pipecat,livekit]`
# (a real wheel build, not editable), at the pins of constraints/agent.txt, plus mediapipe --no-deps.
# Why a second venv: Pipecat needs protobuf>=5.29.6, soxr 1.0 and soundfile 0.13, the server's lock
# (requirements.txt, .venv) has protobuf 4.25, soxr 1.1 and soundfile 0.14; the integration tests
# run their agent side in this interpreter. Idempotent: the dependency install is stamped on the
# hash of pyproject.toml + constraints; the facestream wheel itself is re-installed (no deps, a few
# seconds) whenever the tracked sources changed. Also fills .wheelhouse/ with the server's wheels so
# tests/integration/test_packaging.py can `pip install ./` into a fresh venv offline.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
V=.venv-agent
[ -x $V/bin/python ] || "$PY" -m venv $V
pipq() { "$@" -q 2> >(grep -v "is ignored" >&2); }

deps=$(cat pyproject.toml constraints/agent.txt requirements.txt scripts/setup-agent.sh | sha1sum | cut -c1-12)
if [ ! -f "$V/.stamp-deps-$deps" ]; then
  rm -rf build
  pipq $V/bin/python -m pip install --upgrade pip
  pipq $V/bin/python -m pip install -c constraints/agent.txt './[pipecat,livekit]'
  pipq $V/bin/python -m pip install --no-deps mediapipe==0.10.21
  # the server install's wheels (requirements.txt pins), for the offline packaging test
  pipq $V/bin/python -m pip download -d .wheelhouse -r requirements.txt setuptools wheel
  pipq $V/bin/python -m pip download -d .wheelhouse --no-deps mediapipe==0.10.21
  rm -f $V/.stamp-deps-* && touch "$V/.stamp-deps-$deps"
fi
src=$(find facestream server models hls pyproject.toml -name '*.py' -o -name '*.toml' -o -name '*.json' -o -name '*.txt' | LC_ALL=C sort | xargs cat | sha1sum | cut -c1-12)
if [ ! -f "$V/.stamp-src-$src" ]; then
  rm -rf build  # setuptools' in-tree build dir keeps files deleted from the tree: never package them
  pipq $V/bin/python -m pip install --no-deps --force-reinstall ./
  rm -f $V/.stamp-src-* && touch "$V/.stamp-src-$src"
fi
$V/bin/python -c "import mediapipe, pipecat, livekit.agents, facestream, server.cli"
