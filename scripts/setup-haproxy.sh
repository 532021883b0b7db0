#!/usr/bin/env bash
# Installs what the cluster test (tests/e2e/test_cluster_haproxy.py) and benchmarks/balancer.py need:
# Debian's HAProxy (>= 2.4). Idempotent: apt-get runs only when haproxy is missing. A missing tool is a
# warning here, not a failure: that test skips (or fails under CI=true) with the reason.
set -uo pipefail
cd "$(dirname "$0")/.."

warn() { echo "setup-haproxy: $*" >&2; }
if command -v haproxy >/dev/null 2>&1 || [ -n "${FACESTREAM_HAPROXY:-}" ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
  warn "cannot install haproxy (no apt-get as root): the cluster test will not run"
  exit 0
fi
if [ ! -f /tmp/.facestream-apt-updated ]; then
  apt-get update -qq >/dev/null 2>&1 && touch /tmp/.facestream-apt-updated
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends haproxy >/dev/null 2>&1 \
  || warn "apt-get install haproxy failed: the cluster test will not run"
# Debian's package starts a system haproxy on :80 with its own config; the tests run their own.
if command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now haproxy >/dev/null 2>&1 || true
fi
exit 0
