"""Soak: a few sessions fed speech at real-time pace for a long time (default 30 min; not in CI).

Prints, every ``--sample-s``: server RSS (this process: the app runs in-process), ffmpeg count and
RSS, files under the storage dir, threads; at the end: memory growth (% from the first sample
after warm-up to the end), A/V drift (change of audio − video start PTS between an early and the
latest HLS segment of each session, by ffprobe; locked A/V keeps it constant), stream clock vs
wall clock, and whether file and ffmpeg counts stayed bounded. Acceptance: growth < 5 %, drift
≤ 40 ms, files bounded, ffmpeg count stable.

    python -m benchmarks.soak [--minutes 30] [--sessions 2] [--sample-s 15]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx

from benchmarks.load_ramp import feed_forever
from benchmarks.server_common import API, face_bytes, running_server, speech_pcm16
from server.app import create_app
from server.settings import Settings


def rss_kib(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def ffmpeg_children() -> list[int]:
    me, out = os.getpid(), []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        rest = stat[stat.rindex(")") + 2 :].split()
        if int(rest[1]) == me and "ffmpeg" in stat[stat.index("(") : stat.rindex(")")] and rest[0] != "Z":
            out.append(int(entry))
    return out


def file_count(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


def av_offset_ms(segment: Path) -> float | None:
    """Audio start PTS − video start PTS of one TS segment (ms)."""
    probe = shutil.which("ffprobe") or "/usr/bin/ffprobe"
    out = subprocess.run(
        [probe, "-v", "error", "-show_entries", "stream=codec_type,start_time", "-of", "json", str(segment)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    starts = {
        s["codec_type"]: float(s["start_time"]) for s in json.loads(out.stdout or "{}").get("streams", [])
    }
    if "audio" not in starts or "video" not in starts:
        return None
    return (starts["audio"] - starts["video"]) * 1000


def newest_segment(directory: Path) -> Path | None:
    segs = sorted(directory.glob("seg_*.ts"))
    return segs[-2] if len(segs) >= 2 else None  # the newest may still be written


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--sessions", type=int, default=2)
    ap.add_argument("--sample-s", type=float, default=15.0)
    ap.add_argument(
        "--recording-s",
        type=float,
        default=None,
        help="recording_max_seconds (segment files kept per session)",
    )
    args = ap.parse_args()
    storage = Path(tempfile.mkdtemp(prefix="facestream-soak-"))
    extra = {} if args.recording_s is None else {"recording_max_seconds": args.recording_s}
    settings = Settings(storage_dir=storage, static_dir=None, **extra)
    app = create_app(settings)
    pcm = speech_pcm16(24000)
    stop, errors = threading.Event(), []
    print(
        f"soak: {args.sessions} sessions × {args.minutes:g} min, CPU engine, files kept per session "
        f"{settings.recording_max_seconds:g} s + live window, "
        f"load avg {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    with running_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        registry = app.state.registry
        sids = [
            client.post(
                f"{API}/init", files={"image": ("f.jpg", face_bytes())}, data={"chunk_duration": "0.5"}
            ).json()["session_id"]
            for _ in range(args.sessions)
        ]
        feeders = [
            threading.Thread(target=feed_forever, args=(url, s, pcm, stop, errors), daemon=True) for s in sids
        ]
        for t in feeders:
            t.start()
        start = time.monotonic()
        end = start + args.minutes * 60
        warm_at = start + min(60.0, args.minutes * 60 * 0.2)
        early: dict[str, float] = {}
        samples: list[tuple[float, int, int, int, int]] = []
        while time.monotonic() < end:
            time.sleep(min(args.sample_s, max(0.0, end - time.monotonic())))
            now = time.monotonic()
            kids = ffmpeg_children()
            row = (now - start, rss_kib(), len(kids), file_count(storage), threading.active_count())
            samples.append(row)
            ff_rss = sum(rss_kib(p) for p in kids if Path(f"/proc/{p}").exists())
            if not early and now >= start + 10:
                for sid in sids:
                    seg = newest_segment(storage / sid)
                    offset = av_offset_ms(seg) if seg else None
                    if offset is not None:
                        early[sid] = offset
            print(
                f"t={row[0]:6.0f} s  server RSS={row[1] / 1024:7.1f} MiB  ffmpeg={row[2]} "
                f"(RSS {ff_rss / 1024:.0f} MiB)  files={row[3]}  threads={row[4]}  "
                f"feed errors={len(errors)}  load={os.getloadavg()[0]:.2f}",
                flush=True,
            )
        late = {sid: av_offset_ms(seg) for sid in sids if (seg := newest_segment(storage / sid))}
        elapsed = {sid: time.monotonic() - registry.get(sid).t0 for sid in sids}
        ticks = {sid: registry.get(sid).ticks_emitted for sid in sids}
        stale = sum(registry.get(s).stale_ticks for s in sids)
        states = [str(registry.get(s).state) for s in sids]
        stop.set()
        for t in feeders:
            t.join(10)
        for sid in sids:
            client.delete(f"{API}/session/{sid}")
    warm = next((r for r in samples if r[0] >= warm_at - start), samples[0])
    growth = 100 * (samples[-1][1] - warm[1]) / warm[1]
    drifts = [abs(late[s] - early[s]) for s in sids if early.get(s) is not None and late.get(s) is not None]
    clock = [1000 * (ticks[s] / 25 - elapsed[s]) for s in sids]
    files = [r[3] for r in samples]
    ffm = {r[2] for r in samples}
    print(
        f"memory growth {growth:+.1f} % (RSS {warm[1] / 1024:.1f} → {samples[-1][1] / 1024:.1f} MiB, "
        f"from t={warm[0]:.0f} s); "
        f"A/V drift max {max(drifts, default=float('nan')):.1f} ms (early offsets {early}, late {late}); "
        f"stream clock − wall {min(clock):.0f}…{max(clock):.0f} ms (emission granularity: 40 ms); "
        f"files {min(files)}…{max(files)}; ffmpeg counts seen {sorted(ffm)}; "
        f"stale ticks {stale}/{sum(ticks.values())}; "
        f"states {states}; feed errors {len(errors)}",
        flush=True,
    )
    shutil.rmtree(storage, ignore_errors=True)


if __name__ == "__main__":
    main()
