"""Assembly: how one live session is put together, in one place.

avatar → sink chain (TS ``RestartingSink(HlsSink)`` or the LL-HLS sink, wrapped by the barcode
stamper in debug mode) → engine stream → ``Session`` (clock + producer) → subscribers (segment
retention for recordings) → started. The registry calls the builder for each ``init`` and keeps
only capacity, lookup, expiry and storage; sessions and sinks never import this module, so the
dependency runs one way: ``api → assembly → session → compute → sinks → hls → models``.
"""

from __future__ import annotations

from pathlib import Path

from hls.base import TickSink
from hls.sink import HlsSink
from models.engines.base import Engine
from models.types import ENGINE_SAMPLE_RATE, Avatar, EngineParams
from server.compute.executor import InferenceExecutor
from server.metrics import ServerMetrics
from server.session.registry import SessionRegistry
from server.session.session import Session, SessionConfig
from server.settings import Settings
from server.sinks.debug import BarcodeStampingSink, FrameLogs
from server.sinks.hls import RestartingSink
from server.sinks.llhls import create_llhls_sink
from server.sinks.recording import SegmentRetention


class LiveSessionBuilder:
    """Builds and starts one live session (blocking: ffmpeg start; call off the event loop)."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        executor: InferenceExecutor,
        frame_logs: FrameLogs,
        metrics: ServerMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.executor = executor
        self.frame_logs = frame_logs
        self.metrics = metrics

    def sink_for(self, session_id: str, directory: Path, width: int, height: int) -> TickSink:
        """The session's primary output for the configured HLS mode (one encoder per session)."""
        s = self.settings
        sink: TickSink
        if s.hls_mode == "ll":
            sink = create_llhls_sink(  # restarted like TS: same cap, same metric
                s, directory, width, height, self._sink_restarted, f"session {session_id}"
            )
        else:  # a dead ffmpeg is restarted behind a discontinuity, at most max_sink_restarts times
            sink = RestartingSink(
                lambda resume: HlsSink(
                    directory,
                    width,
                    height,
                    sample_rate=s.output_sample_rate,
                    segment_seconds=s.segment_seconds,
                    list_size=s.live_window_segments,
                    event_playlist=s.keep_all_segments,
                    # recordings (server.sinks.recording): files outlive the live window, pruned below
                    delete_old_segments=not s.keep_all_segments and s.recording_max_seconds <= 0,
                    preset=s.hls_preset,
                    resume=resume,
                ),
                s.max_sink_restarts,
                self._sink_restarted,
                f"session {session_id}",
            )
        if s.debug_barcode:
            sink = BarcodeStampingSink(sink, self.frame_logs.open(session_id))
        return sink

    def __call__(
        self,
        session_id: str,
        directory: Path,
        avatar: Avatar,
        params: EngineParams,
        chunk_duration: float,
        audio_sample_rate: int,
    ) -> Session:
        s = self.settings
        directory.mkdir(parents=True, exist_ok=False)
        width, height = avatar.size
        sink = self.sink_for(session_id, directory, width, height)
        stream = None
        try:
            sink.start()
            stream = self.engine.open_stream(avatar, params)
            window = max(1, round(chunk_duration * ENGINE_SAMPLE_RATE))
            config = SessionConfig(
                lead_frames=s.lead_frames,
                render_margin_frames=s.render_margin_frames,
                window_samples=window,
                max_pending_samples=max(window, round(s.max_queued_speech_s * ENGINE_SAMPLE_RATE)),
                out_rate=s.output_sample_rate,
            )
            session = Session(
                session_id, directory, avatar, params, stream, sink, self.executor, config,
                engine_name=self.engine.name,
                raw_sample_rate=audio_sample_rate, chunk_duration=chunk_duration,
            )  # fmt: skip
            if self.metrics is not None:
                session.lateness.observer = self.metrics.observe_lateness
            session.start()
            if s.hls_mode != "ll":  # the LL sink keeps its own archive (server.sinks.llhls)
                retention = SegmentRetention.for_settings(directory, s, self.executor.blocking)
                if retention is not None:
                    session.subscribe(retention)
            return session
        except BaseException:
            sink.close()
            if stream is not None:
                stream.close()
            raise

    def _sink_restarted(self, count: int, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.ffmpeg_restarts.inc()


def create_registry(
    settings: Settings,
    engine: Engine,
    executor: InferenceExecutor,
    metrics: ServerMetrics | None = None,
) -> SessionRegistry:
    """A registry whose ``create`` builds live sessions with ``LiveSessionBuilder``."""
    frame_logs = FrameLogs()  # only filled when settings.debug_barcode
    builder = LiveSessionBuilder(settings, engine, executor, frame_logs, metrics)
    return SessionRegistry(settings, engine, executor, builder, frame_logs)
