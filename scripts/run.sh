#!/usr/bin/env bash
# Sets up and starts the facestream server on the built-in CPU engine (http://127.0.0.1:9999).
#   scripts/run.sh [facestream serve options]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/facestream serve "$@"
