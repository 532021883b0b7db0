"""How many live sessions this machine sustains, measured on what viewers see.

For each N in ``--counts``, N sessions are fed speech in 0.5 s chunks at real-time pace for
``--seconds`` (one chunk ahead of playback, as a live client does); then per round it prints:
frame lateness (render completion − deadline, server side), stale ticks (the clock repeated a
picture), frames skipped (too late to render), CPU per session (server process + its ffmpeg
children, core-seconds per second) and, in the out-of-process mode, what the *decoded stream*
shows: speech frames whose picture repeats the previous one (frozen), the longest frozen run and
the distinct pictures per second (effective frame rate).

Two client modes:
* ``--client process`` (what the acceptance numbers use): the server runs as its own process
  (``facestream serve``, or ``--server URL`` for one already running) and every session is driven
  by a separate client process that sends WAV chunks over HTTP and, once the session completes,
  downloads its stream (``recording.mp4``: the HLS segments remuxed, byte for byte the media
  viewers got); the streams are decoded with ffmpeg after the round, outside the measured window.
* ``--client inproc``: server and clients in this one process (quick; no decoded-stream check;
  its CPU figure includes the clients and misses the engine's worker processes until they exit).

``--burn K`` runs K extra processes that each spin a core for the whole run (a noisy neighbour);
``--max-sessions`` raises the server's admission for an over-capacity round (default: the largest
count, so every round is admitted). Every row carries the 1-minute load average before and after.

Acceptance runs (idle machine; see issue 14):

    python benchmarks/server_capacity.py --client process --counts 4,6,8 --seconds 20
    python benchmarks/server_capacity.py --client process --counts 12 --seconds 20 --burn 1

Other options: ``--engine still`` (server + encoder cost only, in-process mode), ``--preset``
(x264 preset; default: the server's), ``--image``/``--audio`` (a face and voice of your own).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf
import soxr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.server_common import API, running_server  # noqa: E402
from models.samples import SAMPLE_FACE, SAMPLE_SPEECH  # noqa: E402
from models.types import SAMPLES_PER_FRAME, VideoFrame  # noqa: E402

CHUNK_S = 0.5
FEED_RATE = 24_000


def load_speech(path: Path, rate: int = FEED_RATE) -> np.ndarray:
    pcm, sr = sf.read(path, dtype="float32", always_2d=True)
    return np.clip(soxr.resample(pcm.mean(axis=1), sr, rate), -1, 1).astype(np.float32)


def wav_chunks(pcm: np.ndarray, seconds: float, rate: int = FEED_RATE) -> list[bytes]:
    """``seconds`` of speech (the file looped) as 0.5 s WAV files."""
    step = int(rate * CHUNK_S)
    out = []
    for i in range(int(seconds / CHUNK_S)):
        a = (i * step) % max(1, len(pcm) - step)
        buf = io.BytesIO()
        sf.write(buf, pcm[a : a + step], rate, format="WAV", subtype="PCM_16")
        out.append(buf.getvalue())
    return out


def feed_realtime(
    client: httpx.Client, sid: str, chunks: list[bytes], start: float, errors: list[str]
) -> None:
    """Chunk i is sent at start + (i - 1) × 0.5 s: one chunk ahead of playback, like a live mic."""
    for i, chunk in enumerate(chunks):
        if i > 1:
            time.sleep(max(0.0, start + (i - 1) * CHUNK_S - time.monotonic()))
        r = client.post(
            f"{API}/feed",
            data={"session_id": sid, "is_final_chunk": "true" if i == len(chunks) - 1 else "false"},
            files={"audio_chunk": ("c.wav", chunk, "audio/wav")},
        )
        if r.status_code != 200:
            errors.append(f"{r.status_code} {r.text[:120]}")


def wait_finished(client: httpx.Client, sid: str, timeout: float = 60.0) -> dict:
    end = time.monotonic() + timeout
    while True:
        st = client.get(f"{API}/status/{sid}").json()
        if st.get("status") not in ("streaming", "draining", "created") or time.monotonic() > end:
            return st
        time.sleep(0.25)


# -- out-of-process mode -------------------------------------------------------------------------
def client_main(args: argparse.Namespace) -> int:
    """One viewer + speaker (a separate process): init, feed at real-time pace from ``--start``,
    wait for completion, save the stream and the status JSON to ``--out``."""
    out = Path(args.out)
    chunks = wav_chunks(load_speech(Path(args.audio)), args.seconds)
    with httpx.Client(base_url=args.server, timeout=60) as client:
        r = client.post(
            f"{API}/init",
            files={"image": ("face.jpg", Path(args.image).read_bytes())},
            data={"chunk_duration": str(CHUNK_S)},
        )
        if r.status_code != 200:
            (out / "result.json").write_text(json.dumps({"init_error": f"{r.status_code} {r.text[:200]}"}))
            return 1
        info = r.json()
        sid = info["session_id"]
        errors: list[str] = []
        time.sleep(max(0.0, args.start - time.time()))
        feed_realtime(client, sid, chunks, time.monotonic(), errors)
        status = wait_finished(client, sid)
        url = info.get("recording_url") or f"{API}/session/{sid}/recording.mp4"
        rec = client.get(url)
        if rec.status_code == 200:
            (out / "stream.mp4").write_bytes(rec.content)
        client.delete(f"{API}/session/{sid}")
    (out / "result.json").write_text(
        json.dumps({"status": status, "feed_errors": errors, "recording_status": rec.status_code})
    )
    return 0


def _stat(pid: int) -> tuple[str, list[str]]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.index("(") + 1 : text.rindex(")")], text.rsplit(")", 1)[1].split()


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def server_cpu(pid: int) -> dict[str, float]:
    """The server's CPU seconds so far: its own threads, its encoders (live ffmpeg children plus
    every reaped child, i.e. finished sessions' ffmpeg) and its engine worker processes."""
    tck = os.sysconf("SC_CLK_TCK")
    _, f = _stat(pid)
    out = {
        "server": (int(f[11]) + int(f[12])) / tck,
        "ffmpeg": (int(f[13]) + int(f[14])) / tck,
        "workers": 0.0,
    }
    for child in _children(pid):
        try:
            name, cf = _stat(child)
        except (OSError, ValueError):
            continue
        out["ffmpeg" if "ffmpeg" in name else "workers"] += (int(cf[11]) + int(cf[12])) / tck
    return out


def _burn() -> None:
    while True:
        pass


@dataclass
class ServerProcess:
    url: str
    pid: int | None
    proc: subprocess.Popen | None
    banner: list[str]


def start_server(max_sessions: int | None, preset: str | None, log: Path) -> ServerProcess:
    """``facestream serve`` on a free loopback port; ``max_sessions`` None: its own measurement."""
    from tests.support.servers import free_port

    port = free_port()
    cmd = [sys.executable, "-m", "server.cli", "serve", "--port", str(port)]
    if max_sessions is not None:
        cmd += ["--max-sessions", str(max_sessions)]
    env = dict(os.environ) | ({"FACESTREAM_HLS_PRESET": preset} if preset else {})
    logf = log.open("w")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        time.sleep(0.3)
    else:
        proc.kill()
        raise RuntimeError("server did not start")
    banner = [line for line in log.read_text().splitlines() if "serving on" in line or "admission" in line]
    return ServerProcess(url, proc.pid, proc, banner)


def run_process_mode(args: argparse.Namespace, counts: list[int]) -> None:
    from benchmarks.viewer_freeze import decode, freeze_stats

    work = Path(tempfile.mkdtemp(prefix="facestream-capacity-"))
    server = (
        ServerProcess(args.server, args.server_pid, None, [])
        if args.server
        else start_server(
            None if args.measured_admission else args.max_sessions or max(counts),
            args.preset,
            work / "server.log",
        )
    )
    for line in server.banner:
        print(f"  server: {line}")
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.burn)]
    try:
        for round_no, n in enumerate(counts):
            load0 = os.getloadavg()[0]
            start = time.time() + 4.0 + 0.5 * n  # every client inits first, then all feed together
            dirs = [work / f"r{round_no}-n{n}-s{i}" for i in range(n)]  # a count may repeat
            procs = []
            for d in dirs:
                d.mkdir()
                procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            __file__,
                            "--worker",
                            "--server",
                            server.url,
                            "--out",
                            str(d),
                            "--seconds",
                            str(args.seconds),
                            "--start",
                            str(start),
                            "--image",
                            str(args.image),
                            "--audio",
                            str(args.audio),
                        ],
                        cwd=ROOT,
                    )
                )
            time.sleep(max(0.0, start - time.time()))
            cpu0, t0 = (server_cpu(server.pid) if server.pid else {}), time.monotonic()
            for p in procs:
                p.wait()
            cpu1, t1 = (server_cpu(server.pid) if server.pid else {}), time.monotonic()
            cores = {k: (cpu1[k] - cpu0[k]) / (t1 - t0) for k in cpu1}
            load1 = os.getloadavg()[0]
            rows = []
            for d in dirs:
                result = json.loads((d / "result.json").read_text())
                if "init_error" in result:
                    rows.append({"init_error": result["init_error"]})
                    continue
                st = result["status"]
                row = {"status": st, "feed_errors": len(result["feed_errors"])}
                mp4 = d / "stream.mp4"
                if mp4.exists():
                    frames, audio = decode(mp4, int(st.get("width", 512)), int(st.get("height", 512)))
                    row["viewer"] = freeze_stats(frames, audio)
                rows.append(row)
            report_round(n, rows, cores or None, load0, load1)
    finally:
        for b in burners:
            b.kill()
        if server.proc is not None:
            server.proc.terminate()
            try:
                server.proc.wait(30)
            except subprocess.TimeoutExpired:
                server.proc.kill()


def report_round(
    n: int, rows: list[dict], cpu_cores: dict[str, float] | None, load0: float, load1: float
) -> None:
    refused = [r["init_error"] for r in rows if "init_error" in r]
    ok = [r for r in rows if "status" in r]
    viewers = [r["viewer"] for r in ok if "viewer" in r]
    speech = sum(v.speech_frames for v in viewers)
    frozen = sum(v.frozen_speech_frames for v in viewers)
    longest = max((v.longest_frozen_speech_run for v in viewers), default=0)
    fps = [v.distinct_pictures_per_s for v in viewers]
    st = [r["status"] for r in ok]
    ticks = sum(s.get("total_frames_generated", 0) for s in st)
    stale = sum(s.get("stale_ticks", 0) for s in st)
    skipped = sum(s.get("frames_skipped", 0) for s in st)
    p99s = [s["lateness_ms"]["p99"] for s in st if s.get("lateness_ms", {}).get("p99") is not None]
    failed = [s.get("error") for s in st if s.get("error")]
    cpu = "n/a (external server: pass --server-pid)"
    if cpu_cores is not None:
        per = {k: v / max(1, len(ok)) for k, v in cpu_cores.items()}
        cpu = f"{sum(per.values()):.3f} cores (" + " + ".join(f"{k} {v:.3f}" for k, v in per.items()) + ")"
    print(
        f"N={n:<3} viewer: frozen speech frames {frozen}/{speech} ({100 * frozen / max(speech, 1):.2f} %), "
        f"longest frozen run {longest * 40} ms, pictures/s min {min(fps, default=0):.1f} "
        f"median {float(np.median(fps)) if fps else 0:.1f} | server: stale ticks {stale}/{ticks} "
        f"({100 * stale / max(ticks, 1):.1f} %), skipped {skipped}, lateness p99 per session median "
        f"{float(np.median(p99s)) if p99s else float('nan'):.1f} "
        f"max {max(p99s, default=float('nan')):.1f} ms "
        f"| cpu/session {cpu} | refused {len(refused)} failed {len(failed)} "
        f"feed errors {sum(r['feed_errors'] for r in ok)} | load avg {load0:.2f} → {load1:.2f}",
        flush=True,
    )


# -- in-process mode -------------------------------------------------------------------------------
class _StillStream:
    """Renders nothing: every frame is the avatar's own image (isolates server + encoder cost)."""

    lookahead_frames = 5

    def __init__(self, image: np.ndarray) -> None:
        self._image, self._pushed, self._next = image, 0, 0

    def push_audio(self, pcm: np.ndarray, context: np.ndarray | None = None) -> list[VideoFrame]:
        self._pushed += len(pcm)
        ready = max(0, self._pushed // SAMPLES_PER_FRAME - self.lookahead_frames)
        out = [VideoFrame(i, self._image) for i in range(self._next, ready)]
        self._next = max(self._next, ready)
        return out

    def flush(self) -> list[VideoFrame]:
        return []

    def close(self) -> None:
        pass


class StillEngine:
    name = "still"

    def __init__(self) -> None:
        from models.engines.cpu import CpuEngine

        self._cpu = CpuEngine()

    def prepare_bytes(self, data: bytes, params):  # type: ignore[no-untyped-def]
        return self._cpu.prepare_bytes(data, params)

    def prepare(self, image, params):  # type: ignore[no-untyped-def]
        return self._cpu.prepare(image, params)

    def open_stream(self, avatar, params) -> _StillStream:  # type: ignore[no-untyped-def]
        return _StillStream(avatar.image)


def run_inproc_mode(args: argparse.Namespace, counts: list[int]) -> None:
    from server.app import create_app
    from server.settings import Settings

    chunks = wav_chunks(load_speech(Path(args.audio)), args.seconds)
    storage = Path(tempfile.mkdtemp(prefix="facestream-capacity-"))
    extra = {"hls_preset": args.preset} if args.preset else {}
    settings = Settings(
        storage_dir=storage, static_dir=None, max_sessions=args.max_sessions or max(counts), **extra
    )
    app = create_app(settings, engine=StillEngine() if args.engine == "still" else None)
    face = Path(args.image).read_bytes()
    with running_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        registry = app.state.registry
        for n in counts:
            load0 = os.getloadavg()[0]
            sids = [
                client.post(
                    f"{API}/init", files={"image": ("f.jpg", face)}, data={"chunk_duration": "0.5"}
                ).json()["session_id"]
                for _ in range(n)
            ]
            errors: list[str] = []
            cpu0, t0 = os.times(), time.monotonic()
            clients = [httpx.Client(base_url=url, timeout=60) for _ in sids]
            threads = [
                threading.Thread(target=feed_realtime, args=(c, s, chunks, t0, errors))
                for c, s in zip(clients, sids, strict=True)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            statuses = [wait_finished(client, s) for s in sids]
            cpu1, t1 = os.times(), time.monotonic()
            for c in clients:
                c.close()
            sessions = [registry.get(s) for s in sids]
            lateness = np.concatenate([s.lateness.values() for s in sessions]) * 1000
            cpu = (cpu1.user + cpu1.system + cpu1.children_user + cpu1.children_system) - (
                cpu0.user + cpu0.system + cpu0.children_user + cpu0.children_system
            )
            p50, p99 = np.percentile(lateness, [50, 99]) if lateness.size else (float("nan"),) * 2
            ticks = sum(s["total_frames_generated"] for s in statuses)
            stale = sum(s["stale_ticks"] for s in statuses)
            print(
                f"N={n:<3} frames={lateness.size:<6} lateness p50={p50:7.1f} ms p99={p99:7.1f} ms  "
                f"stale ticks={stale}/{ticks} ({100 * stale / max(ticks, 1):.1f} %)  "
                f"skipped={sum(s.get('frames_skipped', 0) for s in statuses)}  "
                f"longest stale run={max(s.get('longest_stale_run_ms', 0) for s in statuses)} ms  "
                f"cpu/session={cpu / (t1 - t0) / n:.3f} cores (client included)  feed errors={len(errors)}  "
                f"failed={sum(1 for s in statuses if s.get('error'))}  "
                f"load avg {load0:.2f} → {os.getloadavg()[0]:.2f}",
                flush=True,
            )
            for s in sids:
                client.delete(f"{API}/session/{s}")


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Acceptance (idle machine): --client process --counts 4,6,8 --seconds 20; "
        "then --client process --counts 12 --seconds 20 --burn 1 (1.5x the admitted 8).",
    )
    ap.add_argument(
        "--client", choices=["process", "inproc"], default="inproc", help="see the module docstring"
    )
    ap.add_argument("--counts", default="1,2,4,6,8", help="comma-separated session counts, one round each")
    ap.add_argument("--seconds", type=float, default=20.0, help="seconds of real-time speech per session")
    ap.add_argument(
        "--max-sessions", type=int, default=0, help="server admission (default: the largest count)"
    )
    ap.add_argument(
        "--measured-admission",
        action="store_true",
        help="process mode: start the server without --max-sessions (it measures and logs its own limit; "
        "rounds beyond it see 503s, counted as refused)",
    )
    ap.add_argument(
        "--burn", type=int, default=0, help="extra processes spinning one core each (process mode)"
    )
    ap.add_argument("--server", help="process mode: an already running server's URL instead of starting one")
    ap.add_argument("--server-pid", type=int, help="with --server: its pid, for CPU per session")
    ap.add_argument(
        "--engine", choices=["cpu", "still"], default="cpu", help="inproc mode; still: server+encoder only"
    )
    ap.add_argument("--preset", default=None, help="x264 preset of the HLS encoder (default: the server's)")
    ap.add_argument(
        "--image", type=Path, default=Path(SAMPLE_FACE), help="face photo (default: the sample face)"
    )
    ap.add_argument(
        "--audio", type=Path, default=Path(SAMPLE_SPEECH), help="speech, looped (default: the sample)"
    )
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--start", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        sys.exit(client_main(args))
    counts = [int(x) for x in args.counts.split(",")]
    print(
        f"facestream capacity: {len(os.sched_getaffinity(0))} cores, client {args.client}, "
        f"engine {args.engine}, {args.seconds:.0f} s of real-time speech per session in {CHUNK_S} s WAV "
        f"chunks, burners {args.burn}; uptime: {uptime()}",
        flush=True,
    )
    if args.client == "process":
        run_process_mode(args, counts)
    else:
        run_inproc_mode(args, counts)


if __name__ == "__main__":
    main()
