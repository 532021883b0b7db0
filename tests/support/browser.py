"""Helpers for the browser tests and the glass-to-glass benchmark: a real facestream server on
loopback (its own process, as users run it) and node/Chromium discovery.

Why a subprocess and not an in-process uvicorn: the browser tests exercise exactly what
``facestream serve`` starts, including static files at ``/``, and a hung server can be killed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("FACESTREAM_CHROMIUM", "/usr/bin/chromium")


def browser_tools_missing() -> str | None:
    """Why the browser tests cannot run here, or None when node, playwright-core and Chromium exist."""
    if shutil.which("node") is None:
        return "node is not installed (scripts/setup-browser.sh needs Node >= 20)"
    if not (ROOT / "node_modules" / "playwright-core").is_dir():
        return "node_modules/playwright-core is missing: run scripts/setup-browser.sh"
    if not os.access(CHROMIUM, os.X_OK):
        return f"Chromium not found at {CHROMIUM}: run scripts/setup-browser.sh (apt-get install chromium)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def netns_unavailable() -> str | None:
    """Why this process cannot create a network namespace, or None when it can (root + iproute2)."""
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed (needed to create a network namespace)"
    if os.geteuid() != 0:
        return "creating a network namespace needs root (`ip netns add`)"
    return None


@contextlib.contextmanager
def network_namespace() -> Iterator[list[str]]:
    """A fresh network namespace whose only interface is ``lo`` (up); yields the command prefix
    that runs a program inside it (``ip netns exec fs-<random>``) and deletes it afterwards, also
    on failure. Why: WebRTC between Chromium and the server on one host pairs over an interface
    address unless loopback is all there is; inside this namespace all traffic is loopback."""
    name = f"fs-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, text=True)
    try:
        prefix = ["ip", "netns", "exec", name]
        subprocess.run([*prefix, "ip", "link", "set", "lo", "up"], check=True, capture_output=True)
        yield prefix
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)


@contextlib.contextmanager
def running_server(
    env: dict[str, str] | None = None, timeout_s: float = 60.0, exec_prefix: Sequence[str] = ()
) -> Iterator[str]:
    """Starts ``facestream serve`` on a free loopback port; yields its base URL; stops it after.
    ``exec_prefix`` (from ``network_namespace``) runs it inside a network namespace; its URL is
    then reachable only from programs started with the same prefix."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="facestream-browser-") as tmp:
        full_env = {**os.environ, "FACESTREAM_STORAGE_DIR": str(Path(tmp) / "data"), **(env or {})}
        log_path = Path(tmp) / "server.log"
        with log_path.open("wb") as log:
            serve = [sys.executable, "-m", "server.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
            proc = subprocess.Popen(
                [*exec_prefix, *serve],
                cwd=ROOT,
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            url = f"http://127.0.0.1:{port}"
            try:
                _wait_healthy(url, proc, timeout_s, log_path, exec_prefix)
                yield url
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)


def _wait_healthy(
    url: str, proc: subprocess.Popen, timeout_s: float, log_path: Path, exec_prefix: Sequence[str] = ()
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
        if _healthy(f"{url}/health", exec_prefix):
            return
        time.sleep(0.2)
    raise RuntimeError(f"the server did not become healthy in {timeout_s} s:\n{log_path.read_text()[-4000:]}")


_HEALTH_PROBE = "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)"


def _healthy(health_url: str, exec_prefix: Sequence[str]) -> bool:
    if not exec_prefix:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(health_url, timeout=2).status_code == 200
        return False
    # The server's loopback is the namespace's own: ask from inside it.
    probe = [*exec_prefix, sys.executable, "-c", _HEALTH_PROBE, health_url]
    try:
        return subprocess.run(probe, capture_output=True, timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def run_node(
    args: list[str], env: dict[str, str], timeout_s: float, exec_prefix: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    """Runs node from the repository root with ``env`` added (inside a namespace with
    ``exec_prefix``); output captured as text."""
    return subprocess.run(
        [*exec_prefix, "node", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
