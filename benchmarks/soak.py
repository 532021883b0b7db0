"""Soak, per HLS mode: sessions alternating speech and silence, viewers that come and go, N minutes
each (default 30; not in CI), with glass-to-glass in the page at the start and at the end.

For each mode (``--modes ll,ts``; LL-HLS is the server default) a fresh in-process server
(debug barcode on, so the page can read frame indices) runs ``--sessions`` sessions. Each session
is fed real-time speech for ``--speech-s`` seconds (0.5 s raw-PCM chunks, one ahead of playback),
then nothing for ``--silence-s`` seconds (the clock keeps streaming idle frames), over and over.
Each session has ``--viewers`` HTTP viewers that follow the live stream as hls.js does (LL:
blocking reload for the hinted part, then the part; TS: playlist twice a second, each new
segment), leave after 10–40 s and come back 1–3 s later (seeded).

Feeders and viewers run in a separate load process, as real clients would: measured in-process,
their httpx responses (each in a reference cycle with its stream, holding a whole TS segment) sat
in the server's heap until a full garbage collection, a ~10-minute sawtooth of up to ~95 MiB in
TS mode, and their HTTP work took the server's interpreter lock.

Every ``--sample-s`` it prints the server process's RSS, open fds and threads, the ffmpeg children and
their RSS, files under the storage dir, viewer requests/errors and the load average. At the end
of each mode: memory growth (first sample after the 1-minute warm-up → last), growth and
least-squares trend over the last two thirds of the run (a leak keeps its slope; caches and
allocator pools that fill to a bound flatten: measured, the Python heap stays flat under
``--tracemalloc`` while RSS rises ~25 MiB in the first minutes), fd/thread/ffmpeg ranges after
warm-up, A/V drift (change of audio − video start PTS between an early and the latest finished
segment of each session, by ffprobe; locked A/V keeps it constant), stale share (ticks emitted
without a fresh frame / ticks), viewer errors, and glass-to-glass p50/p90, startup and freezes
(pauses > 200 ms between presented frames) from headless Chromium + hls.js on the page
(``--g2g-seconds``, 0 = skip; needs node, playwright-core and Chromium).

Acceptance (issue 18): growth < 5 %, fds and threads flat, drift ≤ 40 ms, stale share ≤ 1 %, no
freeze > 200 ms; LL p50 ≤ 0.8 s, startup ≤ 1.5 s. Valid only on an otherwise idle machine.

    python -m benchmarks.soak [--minutes 30] [--modes ll,ts] [--sessions 2] [--viewers 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import queue
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.server_common import API, face_bytes, running_server, speech_pcm16  # noqa: E402

CHUNK_S = 0.5
_HINT = re.compile(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="(part_(\d+)_(\d+)\.m4s)"')
_TS_SEGMENT = re.compile(r"^(seg_\d+\.ts)$", re.M)


# -- process accounting (/proc) ---------------------------------------------------------------
def rss_kib(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def os_threads() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


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


# -- A/V drift ----------------------------------------------------------------------------------
def _segments(directory: Path) -> list[Path]:
    """Finished segments in order, either mode (TS ``seg_00001.ts``; LL ``seg_1.m4s``)."""
    ts = sorted(directory.glob("seg_*.ts"))
    return ts or sorted(directory.glob("seg_*.m4s"), key=lambda p: int(p.stem[4:]))


def av_offset_ms(directory: Path, which: int = -2) -> float | None:
    """Audio start PTS − video start PTS (ms) of one finished segment (``which``: -2 = the newest
    complete one; the last may still be written). An LL segment is probed behind its init."""
    segs = _segments(directory)
    if len(segs) < abs(which):
        return None
    seg = segs[which]
    with tempfile.TemporaryDirectory() as tmp:
        target = seg
        if seg.suffix == ".m4s":
            target = Path(tmp) / "one.mp4"
            target.write_bytes((directory / "init.mp4").read_bytes() + seg.read_bytes())
        probe = shutil.which("ffprobe") or "/usr/bin/ffprobe"
        fields = ["-show_entries", "stream=codec_type,start_time", "-of", "json"]
        out = subprocess.run(
            [probe, "-v", "error", *fields, str(target)], capture_output=True, text=True, timeout=30
        )
    starts = {
        s["codec_type"]: float(s["start_time"])
        for s in json.loads(out.stdout or "{}").get("streams", [])
        if s.get("start_time") not in (None, "N/A")
    }
    if "audio" not in starts or "video" not in starts:
        return None
    return (starts["audio"] - starts["video"]) * 1000


# -- load: speech/silence feeders and reconnecting viewers -------------------------------------
@dataclass
class Counters:
    feed_errors: list[str] = field(default_factory=list)
    requests: int = 0
    media: int = 0
    viewer_errors: int = 0
    reconnects: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, requests: int = 0, media: int = 0, errors: int = 0, reconnects: int = 0) -> None:
        with self.lock:
            self.requests += requests
            self.media += media
            self.viewer_errors += errors
            self.reconnects += reconnects

    def publish(self, shared: Any) -> None:
        """Copy the counts into the load process's shared array (read by the server process)."""
        with self.lock:
            values = (self.requests, self.media, self.viewer_errors, self.reconnects, len(self.feed_errors))
        with shared.get_lock():
            shared[:] = values

    @classmethod
    def from_shared(cls, shared: Any, feed_errors: list[str]) -> Counters:
        with shared.get_lock():
            requests, media, errors, reconnects, _ = shared[:]
        return cls(feed_errors=feed_errors, requests=requests, media=media, viewer_errors=errors,
                   reconnects=reconnects)  # fmt: skip


def speech_and_silence(
    url: str, sid: str, pcm: np.ndarray, speech_s: float, silence_s: float, stop: threading.Event, c: Counters
) -> None:
    """Real-time speech for ``speech_s`` (0.5 s chunks, one ahead of playback), then silence."""
    step = int(24000 * CHUNK_S)
    offset = 0
    with httpx.Client(base_url=url, timeout=30) as client:
        while not stop.is_set():
            start = time.monotonic()
            for i in range(max(1, round(speech_s / CHUNK_S))):
                if i > 1:
                    stop.wait(max(0.0, start + (i - 1) * CHUNK_S - time.monotonic()))
                if stop.is_set():
                    return
                a = offset % (len(pcm) - step)
                offset += step
                r = client.post(
                    f"{API}/feed", data={"session_id": sid, "is_final_chunk": "false"},
                    files={"audio_chunk": ("c", pcm[a : a + step].tobytes())},
                )  # fmt: skip
                if r.status_code != 200:
                    c.feed_errors.append(f"{r.status_code} {r.text[:100]}")
            stop.wait(silence_s + CHUNK_S)  # the queued chunk plays out, then silence


def _follow_ll(client: httpx.Client, base: str, until: float, c: Counters, stop: threading.Event) -> None:
    r = client.get(f"{base}/playlist.m3u8")
    text = r.text if r.status_code == 200 else ""
    while time.monotonic() < until and not stop.is_set():
        hint = _HINT.search(text)
        if hint is None:  # not started yet, or ended
            time.sleep(0.2)
            r = client.get(f"{base}/playlist.m3u8")
            text = r.text if r.status_code == 200 else ""
            continue
        name, msn, part = hint.groups()
        r = client.get(f"{base}/playlist.m3u8", params={"_HLS_msn": msn, "_HLS_part": part})
        ok = r.status_code == 200
        media = client.get(f"{base}/{name}") if ok else None
        c.add(requests=2 if ok else 1, media=int(bool(media and media.status_code == 200)),
              errors=int(not ok or media is None or media.status_code != 200))  # fmt: skip
        if ok:
            text = r.text
        else:
            time.sleep(0.2)


def _follow_ts(client: httpx.Client, base: str, until: float, c: Counters, stop: threading.Event) -> None:
    seen: set[str] = set()
    while time.monotonic() < until and not stop.is_set():
        r = client.get(f"{base}/playlist.m3u8")
        for name in _TS_SEGMENT.findall(r.text if r.status_code == 200 else "")[-3:]:
            if name not in seen:
                seen.add(name)
                media = client.get(f"{base}/{name}")
                c.add(requests=1, media=int(media.status_code == 200), errors=int(media.status_code != 200))
        c.add(requests=1, errors=int(r.status_code not in (200, 404)))  # 404: not started yet
        time.sleep(0.5)


def reconnecting_viewer(url: str, sid: str, mode: str, seed: int, stop: threading.Event, c: Counters) -> None:
    """Watches for 10–40 s, leaves (closes its connections), comes back 1–3 s later, until stop."""
    rng = random.Random(seed)
    base = f"/hls/{sid}"
    follow = _follow_ll if mode == "ll" else _follow_ts
    while not stop.is_set():
        with httpx.Client(base_url=url, timeout=10) as client:
            try:
                follow(client, base, time.monotonic() + rng.uniform(10, 40), c, stop)
            except httpx.HTTPError:
                c.add(errors=1)
        c.add(reconnects=1)
        stop.wait(rng.uniform(1, 3))


def load_process(
    url: str, sids: list[str], mode: str, args: dict[str, float], stop: Any, shared: Any, errors: Any
) -> None:
    """The clients, in their own process: a feeder per session and its reconnecting viewers.

    Runs until ``stop`` (a multiprocessing Event) is set, publishing counts into ``shared`` every
    second; the feed errors (first 50) go back through ``errors`` at the end."""
    pcm = speech_pcm16(24000)
    halt, counters = threading.Event(), Counters()
    threads = [
        threading.Thread(target=speech_and_silence, daemon=True,
                         args=(url, s, pcm, args["speech_s"], args["silence_s"], halt, counters))
        for s in sids
    ] + [
        threading.Thread(target=reconnecting_viewer, daemon=True,
                         args=(url, s, mode, 1000 * i + v, halt, counters))
        for i, s in enumerate(sids) for v in range(int(args["viewers"]))
    ]  # fmt: skip
    for t in threads:
        t.start()
    while not stop.wait(1.0):
        counters.publish(shared)
    halt.set()
    for t in threads:
        t.join(15)
    counters.publish(shared)
    errors.put(counters.feed_errors[:50])


# -- glass-to-glass in the page ------------------------------------------------------------------
def glass_to_glass(url: str, seconds: float, tmp: Path) -> dict[str, Any]:
    """One page session watched in headless Chromium (benchmarks/glass_to_glass_llhls.py's driver)."""
    if seconds <= 0:
        return {}
    from benchmarks.glass_to_glass_hls import summarize
    from benchmarks.glass_to_glass_llhls import drive_page, long_speech, player_summary
    from tests.support.browser import browser_tools_missing

    missing = browser_tools_missing()
    if missing:
        return {"skipped": missing}
    try:
        run = drive_page(url, seconds, CHUNK_S, long_speech(seconds + 10, tmp / "speech.wav"))
    except RuntimeError as e:
        return {"error": str(e)[-500:]}
    out = summarize(run) | player_summary(run)
    keys = ("p50_s", "p90_s", "startup_s", "gaps_over_200ms", "longest_gap_s", "freezes_starved",
            "freezes_stuck", "waiting_stalls", "part_arrival_gap_max_s", "fatal_player_errors")  # fmt: skip
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in out.items() if k in keys}


# -- one mode -------------------------------------------------------------------------------------
def growth_pct(samples: list[dict[str, float]]) -> float:
    return round(100 * (samples[-1]["rss_mib"] - samples[0]["rss_mib"]) / samples[0]["rss_mib"], 2)


def rss_slope(samples: list[dict[str, float]]) -> float | None:
    """Least-squares RSS trend (MiB per 10 min) over ``samples``: a leak keeps a constant slope,
    caches and allocator pools that fill to a bound flatten out."""
    if len(samples) < 3:
        return None
    t = np.array([r["t"] for r in samples])
    rss = np.array([r["rss_mib"] for r in samples])
    return round(float(np.polyfit(t, rss, 1)[0]) * 600, 2)


def heap_growth(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, top: int = 12) -> list[str]:
    """The allocation sites whose live Python-heap bytes (numpy buffers included) grew most."""
    stats = after.compare_to(before, "lineno")
    return [f"{s.size_diff / 2**20:+.2f} MiB ({s.count_diff:+d}) {s.traceback[0]}" for s in stats[:top]]


def soak_mode(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    from server.app import create_app
    from server.settings import Settings

    storage = Path(tempfile.mkdtemp(prefix=f"facestream-soak-{mode}-"))
    settings = Settings(
        storage_dir=storage, hls_mode=mode, debug_barcode=True, max_sessions=max(4, args.sessions + 2),
    )  # fmt: skip
    app = create_app(settings)
    spawn = multiprocessing.get_context("spawn")  # a clean interpreter: no server state, no fork of threads
    stop, shared, errors = spawn.Event(), spawn.Array("q", 5), spawn.Queue()
    print(f"== {mode}: {args.sessions} sessions × {args.minutes:g} min, "
          f"{args.viewers} reconnecting viewers each, speech {args.speech_s:g} s / silence "
          f"{args.silence_s:g} s, load avg {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
    result: dict[str, Any] = {"mode": mode, "load_avg_start": os.getloadavg()}
    with running_server(app) as url, httpx.Client(base_url=url, timeout=60) as client, \
            tempfile.TemporaryDirectory() as tmp:  # fmt: skip
        registry = app.state.registry
        result["g2g_start"] = glass_to_glass(url, args.g2g_seconds, Path(tmp))
        print(f"  glass-to-glass at the start: {result['g2g_start']}", flush=True)
        sids = [
            client.post(f"{API}/init", files={"image": ("f.jpg", face_bytes())},
                        data={"chunk_duration": str(CHUNK_S)}).json()["session_id"]
            for _ in range(args.sessions)
        ]  # fmt: skip
        load = spawn.Process(
            target=load_process, daemon=True,
            args=(url, sids, mode, {"speech_s": args.speech_s, "silence_s": args.silence_s,
                                    "viewers": args.viewers}, stop, shared, errors),
        )  # fmt: skip
        load.start()
        start = time.monotonic()
        end = start + args.minutes * 60
        warm_at = min(60.0, args.minutes * 60 * 0.2)
        early: dict[str, float | None] = {}
        ticks0 = {s: (registry.get(s).ticks_emitted, registry.get(s).stale_ticks) for s in sids}
        samples: list[dict[str, float]] = []
        heap_start: tracemalloc.Snapshot | None = None
        while time.monotonic() < end:
            time.sleep(min(args.sample_s, max(0.0, end - time.monotonic())))
            now = time.monotonic()
            kids = ffmpeg_children()
            kids_rss = sum(rss_kib(p) for p in kids if Path(f"/proc/{p}").exists()) / 1024
            row = {
                "t": now - start, "rss_mib": rss_kib() / 1024, "fds": open_fds(), "threads": os_threads(),
                "ffmpeg": len(kids), "ffmpeg_rss_mib": kids_rss, "files": file_count(storage),
                "load": os.getloadavg()[0],
                "py_heap_mib": tracemalloc.get_traced_memory()[0] / 2**20 if args.tracemalloc else 0.0,
            }  # fmt: skip
            samples.append(row)
            counters = Counters.from_shared(shared, [])
            if args.tracemalloc and heap_start is None and row["t"] >= warm_at:
                heap_start = tracemalloc.take_snapshot()
            if not early and row["t"] >= 10:
                early = {s: av_offset_ms(storage / s) for s in sids}
            print(f"  t={row['t']:6.0f} s  RSS={row['rss_mib']:7.1f} MiB  fds={row['fds']}  "
                  f"threads={row['threads']}  ffmpeg={row['ffmpeg']} ({row['ffmpeg_rss_mib']:.0f} MiB)  "
                  f"files={row['files']}  viewer req={counters.requests} err={counters.viewer_errors} "
                  f"reconnects={counters.reconnects}  feed errors={shared[4]}  "
                  f"load={row['load']:.2f}  py heap={row['py_heap_mib']:.1f} MiB", flush=True)  # fmt: skip
        if heap_start is not None:
            result["heap_growth_top"] = heap_growth(heap_start, tracemalloc.take_snapshot())
        late = {s: av_offset_ms(storage / s) for s in sids}
        ticks = {s: registry.get(s).ticks_emitted - ticks0[s][0] for s in sids}
        stale = {s: registry.get(s).stale_ticks - ticks0[s][1] for s in sids}
        states = [str(registry.get(s).state) for s in sids]
        stop.set()
        try:
            feed_errors = errors.get(timeout=30)
        except queue.Empty:
            feed_errors = ["the load process did not report"]
        load.join(10)
        if load.is_alive():
            load.terminate()
        counters = Counters.from_shared(shared, feed_errors)
        result["g2g_end"] = glass_to_glass(url, args.g2g_seconds, Path(tmp))
        print(f"  glass-to-glass at the end: {result['g2g_end']}", flush=True)
        for sid in sids:
            client.delete(f"{API}/session/{sid}")
        leftover = len(ffmpeg_children())
    shutil.rmtree(storage, ignore_errors=True)
    warm = [r for r in samples if r["t"] >= warm_at] or samples
    steady = [r for r in samples if r["t"] >= args.minutes * 60 / 3] or warm
    drifts = [abs(late[s] - early[s]) for s in sids if early.get(s) is not None and late.get(s) is not None]

    def span(key: str) -> list[float]:
        return [min(r[key] for r in warm), max(r[key] for r in warm)]

    result |= {
        "minutes": args.minutes,
        "memory_growth_pct": round(100 * (warm[-1]["rss_mib"] - warm[0]["rss_mib"]) / warm[0]["rss_mib"], 2),
        "rss_mib": [round(warm[0]["rss_mib"], 1), round(warm[-1]["rss_mib"], 1)],
        "steady_growth_pct": growth_pct(steady),
        "steady_slope_mib_per_10min": rss_slope(steady),
        "fds": span("fds"), "threads": span("threads"), "ffmpeg": span("ffmpeg"), "files": span("files"),
        "av_drift_max_ms": round(max(drifts), 1) if drifts else None,
        "stale_share_pct": round(100 * sum(stale.values()) / max(1, sum(ticks.values())), 3),
        "viewer_requests": counters.requests, "viewer_errors": counters.viewer_errors,
        "viewer_reconnects": counters.reconnects, "feed_errors": int(shared[4]),
        "feed_error_samples": counters.feed_errors[:5],
        "py_heap_mib": [round(warm[0]["py_heap_mib"], 1), round(warm[-1]["py_heap_mib"], 1)],
        "session_states": states, "ffmpeg_left_after_delete": leftover, "load_avg_end": os.getloadavg(),
    }  # fmt: skip
    return result


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="per mode")
    ap.add_argument("--modes", default="ll,ts")
    ap.add_argument("--sessions", type=int, default=2)
    ap.add_argument("--viewers", type=int, default=2, help="reconnecting HTTP viewers per session")
    ap.add_argument("--speech-s", type=float, default=8.0)
    ap.add_argument("--silence-s", type=float, default=6.0)
    ap.add_argument("--sample-s", type=float, default=15.0)
    ap.add_argument("--g2g-seconds", type=float, default=20.0, help="page watch at start and end (0 = skip)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--tracemalloc",
        action="store_true",
        help="trace the Python heap: live bytes per sample and the top growing sites "
        "(warm-up → end), to tell leaked objects from allocator fragmentation",
    )
    args = ap.parse_args(argv)
    if args.tracemalloc:
        tracemalloc.start()
    results = [soak_mode(mode.strip(), args) for mode in args.modes.split(",") if mode.strip()]
    for r in results:
        print(f"== {r['mode']} summary ({r['minutes']:g} min, load {r['load_avg_start'][0]:.2f} → "
              f"{r['load_avg_end'][0]:.2f}): memory growth {r['memory_growth_pct']:+.2f} % "
              f"(RSS {r['rss_mib'][0]} → {r['rss_mib'][1]} MiB; last two thirds "
              f"{r['steady_growth_pct']:+.2f} %, trend {r['steady_slope_mib_per_10min']} MiB/10 min), "
              f"fds {r['fds']}, threads {r['threads']}, "
              f"ffmpeg {r['ffmpeg']}, files {r['files']}, A/V drift max {r['av_drift_max_ms']} ms, "
              f"stale share {r['stale_share_pct']} %, viewer errors {r['viewer_errors']}/"
              f"{r['viewer_requests']} ({r['viewer_reconnects']} reconnects), feed errors "
              f"{r['feed_errors']}, states {r['session_states']}, ffmpeg left "
              f"{r['ffmpeg_left_after_delete']}", flush=True)  # fmt: skip
        for when in ("g2g_start", "g2g_end"):
            print(f"   {when}: {r[when]}", flush=True)
        if "heap_growth_top" in r:
            heap = r["py_heap_mib"]
            print(f"   Python heap {heap[0]} → {heap[1]} MiB; top growth:", flush=True)
            for line in r["heap_growth_top"]:
                print(f"     {line}", flush=True)
    if args.json:
        print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
