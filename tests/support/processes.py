"""Shared by the hardening, fault and fuzz tests (no tests here): a probe server, process and
file-tree snapshots to prove that nothing leaked and nothing outside the storage dir changed."""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from server.app import create_app
from server.settings import Settings
from tests.support.engines import ProbeEngine
from tests.support.servers import live_server


@contextlib.contextmanager
def probe_app(tmp_path: Path, engine=None, **overrides) -> Iterator[tuple[httpx.Client, Settings, object]]:
    """A real uvicorn on loopback with the probe engine; yields (client, settings, app)."""
    base = {"storage_dir": tmp_path / "sessions", "static_dir": None, "warm_up": False}
    settings = Settings(**(base | overrides))
    app = create_app(settings, engine=engine or ProbeEngine())
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client, settings, app


def ffmpeg_children() -> set[int]:
    """Pids of ffmpeg processes whose parent is this test process."""
    me, found = os.getpid(), set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            state = stat[stat.rindex(")") + 2 :].split()[0]
            if ppid == me and "ffmpeg" in name and state != "Z":
                found.add(int(entry))
    return found


def session_threads(sid: str) -> list[str]:
    return [t.name for t in threading.enumerate() if sid[:8] in t.name and t.is_alive()]


def tree_snapshot(root: Path, exclude: Path | None = None) -> dict[str, tuple[int, int]]:
    """relative path → (size, mtime_ns) of every file and dir under ``root`` (minus ``exclude``)."""
    snap: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if exclude is not None and (here == exclude or exclude in here.parents):
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            p = here / name
            if exclude is not None and p == exclude:
                continue
            st = p.lstat()
            snap[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return snap


def wait_until(predicate, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


_SEGMENT_URI = re.compile(r"^seg_0*(\d+)\.(?:ts|m4s)$")


def segment_numbers(playlist: str) -> list[int]:
    """Numbers of the complete segments a playlist lists, in order, in either HLS mode
    (TS ``seg_00007.ts``, LL ``seg_7.m4s``; LL parts ``part_7_0.m4s`` are not segments)."""
    return [int(m.group(1)) for x in playlist.split() if (m := _SEGMENT_URI.match(x))]


def last_segment(client: httpx.Client, sid: str) -> int:
    r = client.get(f"/hls/{sid}/playlist.m3u8")
    if r.status_code != 200:
        return 0
    return max(segment_numbers(r.text) or [0])


def metric_values(text: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
