"""The real ``facestream serve`` process: JSON logs with session ids, and SIGTERM ends every
playlist (``#EXT-X-ENDLIST``) and leaves no ffmpeg behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.api import init_session
from tests.support.processes import wait_until
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> set[int]:
    found = set()
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        rest = stat[stat.rindex(")") + 2 :].split()
        if int(rest[1]) == pid and rest[0] != "Z":
            found.add(int(entry))
    return found


@pytest.mark.parametrize("mode", ["ll", "ts"])
def test_sigterm_ends_playlists_stops_children_and_logs_are_json(tmp_path, sample_face_path, mode) -> None:
    port = free_port()
    env = os.environ | {"FACESTREAM_WARM_UP": "false", "FACESTREAM_STATIC_DIR": ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--port", str(port),
         "--storage-dir", str(tmp_path / "s"), "--log-format", "json", "--hls-mode", mode],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:

            def up() -> bool:
                try:
                    return client.get("/ready").status_code == 200
                except httpx.TransportError:
                    return False

            assert wait_until(up, 60, 0.2), "server did not start"
            sids = [init_session(client, sample_face_path.read_bytes())["session_id"] for _ in range(2)]
            first = "seg_00001.ts" if mode == "ts" else "seg_1.m4s"
            assert wait_until(lambda: all((tmp_path / "s" / s / first).exists() for s in sids), 15)
            encoders = _children(proc.pid)
            assert len(encoders) >= 2
        t = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        # uvicorn re-raises the captured SIGTERM after its graceful shutdown: -15 is a clean exit
        assert proc.wait(30) in (0, -signal.SIGTERM) and time.monotonic() - t < 25
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for sid in sids:
        assert (tmp_path / "s" / sid / "playlist.m3u8").read_text().rstrip().endswith("#EXT-X-ENDLIST")
    assert not [p for p in encoders if Path(f"/proc/{p}").exists()]  # no ffmpeg outlived the server
    records = [json.loads(line) for line in proc.stderr.read().splitlines() if line.startswith("{")]
    assert any(r.get("session_id") == sids[0] and r["logger"] == "facestream.registry" for r in records)
    assert any(r["logger"].startswith("uvicorn") for r in records)  # uvicorn logs in JSON too
