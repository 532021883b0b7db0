#!/usr/bin/env bash
# Sets up everything (Python deps, ffprobe, browser-test deps, HAProxy) and runs the whole test suite.
#   scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
# .venv-agent: facestream installed as `pip install ./[pipecat,livekit]` (protobuf 6) for the agent
# integration tests, and .wheelhouse for the offline packaging test (scripts/setup-agent.sh says why)
scripts/setup-agent.sh
# Tests check outputs with ffprobe. PyPI's static ffprobe builds crash on MPEG-TS here, so the
# distribution's ffmpeg package provides it (docs/DEPENDENCIES.md).
if ! command -v ffprobe >/dev/null 2>&1 && [ -z "${FACESTREAM_FFPROBE:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null
  else
    echo "ffprobe missing: install your distribution's ffmpeg package (or set FACESTREAM_FFPROBE)" >&2
  fi
fi
# Lip-sync quality tests speak known text with espeak-ng (Debian package; idempotent).
if ! command -v espeak-ng >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends espeak-ng >/dev/null
  else
    echo "espeak-ng missing: install your distribution's espeak-ng package (voice tests will skip)" >&2
  fi
fi
[ -x scripts/setup-browser.sh ] && scripts/setup-browser.sh
[ -x scripts/setup-haproxy.sh ] && scripts/setup-haproxy.sh
.venv/bin/ruff check .
.venv/bin/python -m mypy
exec .venv/bin/python -m pytest "$@"
