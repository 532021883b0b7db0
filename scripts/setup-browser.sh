#!/usr/bin/env bash
# Installs what the browser tests need: node packages from package-lock.json (playwright-core, hls.js)
# and Debian's Chromium. Never downloads a browser build of its own. Idempotent: a stamp keyed on the
# lock file skips `npm ci` when nothing changed; apt-get runs only when a tool is missing.
# A missing tool is a warning here, not a failure: the browser tests skip (or fail under CI=true)
# with the reason, so the rest of the suite still runs.
set -uo pipefail
cd "$(dirname "$0")/.."

warn() { echo "setup-browser: $*" >&2; }
have_apt() { command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; }
apt_install() {
  have_apt || { warn "cannot install $* (no apt-get as root)"; return 1; }
  if [ ! -f /tmp/.facestream-apt-updated ]; then
    apt-get update -qq >/dev/null 2>&1 && touch /tmp/.facestream-apt-updated
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 \
    || { warn "apt-get install $* failed"; return 1; }
}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt_install nodejs npm || warn "node/npm missing: the browser tests will not run"
fi

CHROMIUM=${FACESTREAM_CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM" ]; then
  apt_install chromium || warn "chromium missing at $CHROMIUM: the browser tests will not run"
fi

if command -v npm >/dev/null 2>&1; then
  stamp="node_modules/.facestream-$(sha1sum package-lock.json | cut -c1-12)"
  if [ ! -f "$stamp" ]; then
    if npm ci --no-audit --no-fund --loglevel=error >/dev/null; then
      touch "$stamp"
    else
      warn "npm ci failed: the browser tests will not run"
    fi
  fi
fi
exit 0
