"""Helpers for the browser tests and the glass-to-glass benchmark: a real facestream server on
loopback (its own process, as users run it) and node/Chromium discovery.

Why a subprocess and not an in-process uvicorn: the browser tests exercise exactly what
``facestream serve`` starts, including static files at ``/``, and a hung server can be killed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
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


@contextlib.contextmanager
def running_server(env: dict[str, str] | None = None, timeout_s: float = 60.0) -> Iterator[str]:
    """Starts ``facestream serve`` on a free loopback port; yields its base URL; stops it after."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="facestream-browser-") as tmp:
        full_env = {**os.environ, "FACESTREAM_STORAGE_DIR": str(Path(tmp) / "data"), **(env or {})}
        log_path = Path(tmp) / "server.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "server.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                cwd=ROOT,
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            url = f"http://127.0.0.1:{port}"
            try:
                _wait_healthy(url, proc, timeout_s, log_path)
                yield url
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)


def _wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the server did not become healthy in {timeout_s} s:\n{log_path.read_text()[-4000:]}")


def run_node(args: list[str], env: dict[str, str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    """Runs node from the repository root with ``env`` added; output captured as text."""
    return subprocess.run(
        ["node", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
