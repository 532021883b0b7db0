#!/usr/bin/env bash
# Sets up everything (Python deps, browser-test deps) and runs the whole test suite.
#   scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
[ -x scripts/setup-browser.sh ] && scripts/setup-browser.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
