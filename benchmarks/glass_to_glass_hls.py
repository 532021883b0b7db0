"""Glass-to-glass latency of the live HLS stream as a viewer sees it in Chromium with hls.js.

Method: the server (``FACESTREAM_DEBUG_BARCODE=1``) stamps each frame's timeline index as a barcode
(``hls.barcode``) and records ``time.time()`` when it hands the frame to the encoder; the page
(``/?debug=latency``) reads the barcode off every frame Chromium presents (requestVideoFrameCallback
+ canvas) and records the expected display time (``performance.timeOrigin + expectedDisplayTime``).
Clocks are aligned NTP-style: the page reads ``server_time`` from ``/api/debug/clock`` and keeps the
offset of the round trip that was shortest (error ≤ rtt/2, well under 1 ms on loopback).
Latency of a frame = display time (server clock) − hand-off time; a gap is a pause > 200 ms between
consecutive presented frames. Startup = click on "Start session" (init request sent) → first frame shown.

    python benchmarks/glass_to_glass_hls.py [--url http://127.0.0.1:9999] [--seconds 20] [--json]

Without ``--url`` it starts its own server on loopback with the debug barcode on.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.support.browser: the loopback server + node helpers

GAP_S = 0.2
GOAL_P50_S = 1.5
GOAL_STARTUP_S = 2.5


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def handed_times(frame_times: dict[str, Any]) -> dict[int, float]:
    """{frame index: hand-off time in s} from the debug route's answer (pairs or a mapping)."""
    frames = frame_times.get("frames", [])
    pairs = frames.items() if isinstance(frames, dict) else frames
    return {int(index): float(t) for index, t in pairs}


def latency_summary(
    handed: dict[int, float], shown: list[tuple[int, float]], offset_s: float, gap_s: float = GAP_S
) -> dict[str, float | int]:
    """Latency statistics from hand-off times (server clock, s) and (index, display time on the page
    clock, s) pairs in display order; ``offset_s`` converts page time to server time."""
    first_shown: dict[int, float] = {}
    for index, at in shown:
        first_shown.setdefault(index, at + offset_s)
    latencies = [at - handed[i] for i, at in first_shown.items() if i in handed]
    times = [at for _, at in shown]
    gaps = [b - a for a, b in itertools.pairwise(times) if b - a > gap_s]
    indices = sorted(first_shown)
    span = indices[-1] - indices[0] + 1 if indices else 0
    return {
        "watched_s": (max(times) - min(times)) if times else 0.0,
        "frames_shown": len(first_shown),
        "frames_matched": len(latencies),
        "frames_missing_in_span": span - len(indices),
        "p50_s": _percentile(latencies, 0.5),
        "p90_s": _percentile(latencies, 0.9),
        "min_s": min(latencies, default=math.nan),
        "max_s": max(latencies, default=math.nan),
        "gaps_over_200ms": len(gaps),
        "longest_gap_s": max(gaps, default=0.0),
    }


def summarize(run: dict[str, Any]) -> dict[str, Any]:
    """Everything the benchmark reports, from the JSON the page driver printed."""
    clock = run.get("clock") or {}
    offset_s = float(clock.get("offsetMs", math.nan)) / 1000
    shown = [(int(r["index"]), float(r["shownAt"]) / 1000) for r in run["records"]]
    handed = handed_times(run["frameTimes"]) if "frames" in run["frameTimes"] else {}
    out: dict[str, Any] = latency_summary(handed, shown, offset_s) if handed else {"frames_shown": len(shown)}
    timings = run["timings"]
    out["startup_s"] = (run["firstFrameAt"] - timings["initStartedAt"]) / 1000
    out["init_answer_s"] = (timings["initAnsweredAt"] - timings["initStartedAt"]) / 1000
    out["playlist_ready_s"] = (timings.get("playlistReadyAt", math.nan) - timings["initStartedAt"]) / 1000
    hls = [s["latency"] for s in run["hlsSamples"] if s["latency"] is not None]
    pdt = [s["pdtLatencyMs"] / 1000 for s in run["hlsSamples"] if s["pdtLatencyMs"] is not None]
    out["hlsjs_latency_p50_s"] = _percentile(hls, 0.5)
    out["program_date_time_latency_p50_s"] = _percentile(pdt, 0.5)
    out["clock_rtt_ms"] = clock.get("rttMs")
    out["unreadable_frames"] = run["unreadable"]
    out["fatal_player_errors"] = run["fatal"]
    out["frame_times_error"] = run["frameTimes"].get("error")
    return out


def drive_page(url: str, seconds: float, chunk_duration: float) -> dict[str, Any]:
    from tests.support.browser import run_node

    args = ["tests/e2e/browser/glass-to-glass.mjs", "--url", url, "--seconds", str(seconds)]
    result = run_node([*args, "--chunk-duration", str(chunk_duration)], {}, timeout_s=seconds + 120)
    if result.returncode != 0:
        raise RuntimeError(f"the page driver failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="a running server started with FACESTREAM_DEBUG_BARCODE=1")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to watch after the first frame")
    parser.add_argument("--chunk-duration", type=float, default=0.5)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    if args.url:
        run = drive_page(args.url, args.seconds, args.chunk_duration)
    else:
        from tests.support.browser import running_server

        with running_server({"FACESTREAM_DEBUG_BARCODE": "1"}) as url:
            run = drive_page(url, args.seconds, args.chunk_duration)
    summary = summarize(run)
    if args.json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key:34s} {value:.3f}" if isinstance(value, float) else f"{key:34s} {value}")
        print(f"goal: p50 <= {GOAL_P50_S} s with 1 s segments, startup <= {GOAL_STARTUP_S} s")
    return summary


if __name__ == "__main__":
    main()
