"""``facestream`` command line: ``serve`` (the HTTP server) and ``render`` (offline MP4).

Settings come from the environment (``FACESTREAM_*``); flags given here override them. Both are
validated once, before anything starts; a bad value prints the reason and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

from models.errors import FacestreamError

_SERVE_FLAGS = {
    "host": (str, "bind address (default 127.0.0.1; use 0.0.0.0 in Docker or to serve a LAN)"),
    "port": (int, "TCP port (default 9999)"),
    "storage_dir": (Path, "where session HLS files live (default ./data/sessions)"),
    "engine": (str, "cpu (default) or imtalker"),
    "weights_dir": (Path, "IMTalker checkpoints folder"),
    "device": (str, "torch device for the neural engine (cuda, cuda:1, cpu)"),
    "imtalker_dtype": (str, "IMTalker precision: fp32 (default), bf16 or fp16"),
    "imtalker_compile": (str, "torch.compile mode for the IMTalker renderer (default: none)"),
    "imtalker_first_window_ms": (float, "IMTalker first motion window, 400–2000 ms (shorter: sooner)"),
    "max_sessions": (int, "live session limit (default: measured at start-up, logged with its derivation)"),
    "admission_utilisation": (float, "share of the cores measured admission plans for (default 0.7)"),
    "engine_processes": (int, "worker processes the CPU engine's streams run in (default -1: one per core)"),
    "session_idle_timeout_s": (float, "expire sessions idle this long (default 3000 s)"),
    "max_queued_speech_s": (float, "queued speech bound per session (default 120 s)"),
    "latency_lead_ms": (float, "start new utterances this far ahead of the playhead (default 200 ms)"),
    "live_window_segments": (int, "segments listed in the live playlist (default 6)"),
    "hls_mode": (str, "ll (default: Low-Latency HLS, fMP4 parts, ~0.7 s) or ts (1 s MPEG-TS segments)"),
    "log_level": (str, "critical|error|warning|info|debug"),
    "log_format": (str, "text (default) or json: one JSON object per line, with session ids"),
    "node_id": (str, "this node's name behind a balancer (= its haproxy server name); tags session ids"),
    "drain_timeout_s": (float, "on SIGUSR1 or POST /admin/drain: live sessions get this long (600 s)"),
}


def _serve_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the streaming server")
    for name, (kind, text) in _SERVE_FLAGS.items():
        p.add_argument("--" + name.replace("_", "-").removesuffix("-s"), dest=name, type=kind, help=text)
    p.add_argument(
        "--keep-all-segments",
        dest="keep_all_segments",
        action="store_true",
        default=None,
        help="event playlists listing every segment (replayable) instead of a live window",
    )
    p.add_argument(
        "--insecure",
        dest="insecure",
        action="store_true",
        default=None,
        help="allow a non-loopback --host without API keys (FACESTREAM_API_KEYS): anyone who can "
        "reach the port then controls every session",
    )
    p.add_argument(
        "--no-warm-up",
        dest="warm_up",
        action="store_false",
        default=None,
        help="skip analysing the sample face at start-up (faster start; the first init pays instead)",
    )


def _render_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="render one face + one audio file to an MP4, offline")
    p.add_argument("--image", required=True, type=Path)
    p.add_argument("--audio", required=True, type=Path, help="WAV, MP3, FLAC, OGG, M4A, …")
    p.add_argument("-o", "--output", required=True, type=Path)
    p.add_argument("--engine", default="cpu")
    p.add_argument("--weights-dir", type=Path)
    p.add_argument("--device")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--pose-style", help="JSON [pitch, yaw, roll]")
    p.add_argument("--gaze-style", help="JSON [x, y]")
    p.add_argument("--no-crop", action="store_true")


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from server.app import create_app
    from server.settings import Settings

    flags = {*_SERVE_FLAGS, "keep_all_segments", "warm_up", "insecure"}
    overrides = {k: v for k, v in vars(args).items() if k in flags}
    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as e:
        print(f"facestream: invalid settings:\n{e}", file=sys.stderr)
        return 2
    from server.api.auth import exposure_problem
    from server.api.deadlines import uvicorn_options

    problem = exposure_problem(settings)  # never open beyond loopback by accident
    if problem is not None:
        print(f"facestream: {problem}", file=sys.stderr)
        return 2
    from server.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    server: uvicorn.Server | None = None

    def exit_drained() -> None:  # a finished drain leaves exactly as SIGTERM does
        if server is not None:
            server.should_exit = True

    app = create_app(settings, on_drained=exit_drained, drain_signal=True)
    node = f", node {settings.node_id}" if settings.node_id else ""
    print(
        f"facestream: serving on http://{settings.host}:{settings.port} (engine {settings.engine}{node})",
        flush=True,
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            log_config=None,  # uvicorn's loggers propagate to configure_logging's handler
            timeout_graceful_shutdown=20,
            **uvicorn_options(settings),  # head deadline + size cap, keep-alive timeout (slowloris)
        )
    )
    server.run()
    return 0 if server.started else 3  # 3: uvicorn's start-up failure status


def _render(args: argparse.Namespace) -> int:
    from models.engines import create_engine
    from server.api.forms import parse_engine_params
    from server.compute.render_file import render_file

    try:
        params = parse_engine_params(
            "false" if args.no_crop else "true", str(args.seed), None, None, args.pose_style, args.gaze_style
        )
        image = args.image.read_bytes()
        engine = create_engine(args.engine, args.weights_dir, args.device)

        def progress(done: int, total: int) -> None:
            sys.stderr.write(f"\rrendering {done}/{total} frames")
            sys.stderr.flush()

        result = render_file(engine, image, args.audio, args.output, params, progress=progress)
    except (FacestreamError, OSError) as e:
        print(f"\nfacestream render: {e}", file=sys.stderr)
        return 1
    print(
        f"\nwrote {result.path}: {result.frames} frames ({result.frames / 25:.2f} s) for "
        f"{result.audio_seconds:.2f} s of audio in {result.render_seconds:.1f} s "
        f"({result.speed:.2f}× real time)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="facestream", description="Real-time talking-head streaming server")
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    _render_parser(sub)
    args = parser.parse_args(argv)
    return _serve(args) if args.command == "serve" else _render(args)


if __name__ == "__main__":
    sys.exit(main())
