"""The agent interpreter: .venv-agent, where facestream is installed next to Pipecat / LiveKit.

Why a second interpreter: Pipecat needs protobuf>=5.29.6, soxr 1.0 and soundfile 0.13; the server's
lock (.venv) has protobuf 4.25, soxr 1.1 and soundfile 0.14. scripts/setup-agent.sh (run by
scripts/test.sh) builds .venv-agent with `pip install ./[pipecat,livekit]` at constraints/agent.txt;
the integration tests run their agent side there (tests/integration/agent_probes/) and assert here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
AGENT_PYTHON = Path(os.environ.get("FACESTREAM_AGENT_PYTHON", ROOT / ".venv-agent" / "bin" / "python"))
MARK = "PROBE-JSON "


def agent_python() -> Path:
    """The agent venv's interpreter; outside CI a missing venv skips (CI must have it)."""
    if not AGENT_PYTHON.exists():
        if os.environ.get("CI"):
            raise AssertionError(f"{AGENT_PYTHON} missing: scripts/test.sh runs scripts/setup-agent.sh")
        pytest.skip("no .venv-agent: run scripts/setup-agent.sh")
    return AGENT_PYTHON


def run_probe(module: str, *args: str, timeout: float = 240.0) -> dict[str, Any]:
    """Run ``python -m module`` in the agent venv with the working tree first on sys.path (so
    it tests this tree, not the installed wheel) and return the JSON it printed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [str(agent_python()), "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stderr[-6000:])
        raise AssertionError(f"{module} exited {proc.returncode} without a result")
    return json.loads(lines[-1][len(MARK) :])
