"""Adapter: a Session seen through ``RealtimeSessionPort`` (WebSocket, SSE, WebRTC).

The real-time routes were written against a port; this is the server's side of it. One adapter
per session (``SessionRegistry.realtime(session_id)`` creates it on first use): it subscribes a
tick fan-out and a speech-edge watcher to the session clock, runs ingest off the event loop and
translates the session's errors into the port's.

Events published: ``speech_started`` / ``speech_ended`` at the first / after the last frame of each
scheduled utterance (a run on the timeline, so pauses inside one chunk do not split it),
``speech_ended(interrupted=True)`` on barge-in, ``complete`` or ``error`` when the session finishes;
the bus closes with the session. (``final_accepted`` and ``interrupted`` are published by the routes
that handled the request, so each reaches every listener exactly once.)
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor

import numpy as np

from hls.barcode import stamp_barcode
from models.types import ENGINE_SAMPLE_RATE, FPS, AudioSlice, VideoFrame
from server.errors import SpeechBacklogFullError, SpeechQueueFullError
from server.session import events as ev
from server.session.events import EventBus
from server.session.session import Session
from server.session.state import SessionState
from server.sinks.debug import IngestLog
from server.sinks.fanout import RingTickFanout


class _SpeechEdges:
    """Tick subscriber that turns timeline runs into speech_started / speech_ended events."""

    def __init__(self, session: Session, events: EventBus) -> None:
        self._session = session
        self._events = events
        self._speaking = False
        self._next = 0
        self.interrupted = False

    def publish(self, frame: VideoFrame, audio: AudioSlice) -> None:
        self._next = frame.index + 1
        speaking = self._session.schedule.is_speech_frame(frame.index)
        if speaking and not self._speaking:
            self._events.publish(ev.speech_started(frame.index, FPS))
        elif self._speaking and not speaking:
            self._events.publish(ev.speech_ended(frame.index, FPS, interrupted=self.interrupted))
            self.interrupted = False
        self._speaking = speaking

    def close(self) -> None:
        if self._speaking:  # the timeline ended on the utterance's last frame: it ended there
            self._events.publish(ev.speech_ended(self._next, FPS, interrupted=self.interrupted))
            self._speaking = False
        state = self._session.state
        if state is SessionState.COMPLETE:
            self._events.publish(ev.complete())
        elif state is SessionState.FAILED:
            self._events.publish(ev.error("session_failed", self._session.error or "session failed"))
        self._events.close()


class _BarcodeStamper:
    """Debug only (``debug_barcode``): stamps each tick's frame index before the fan-out sees it,
    so a WebRTC viewer can read which frame it shows (as the HLS sink's frames are stamped)."""

    def __init__(self, inner: RingTickFanout) -> None:
        self._inner = inner

    def publish(self, frame: VideoFrame, audio: AudioSlice) -> None:
        stamped = VideoFrame(frame.index, stamp_barcode(frame.image, frame.index), frame.speech, frame.motion)
        self._inner.publish(stamped, audio)

    def close(self) -> None:
        self._inner.close()


class RealtimeSessionAdapter:
    def __init__(self, session: Session, executor: Executor, *, debug_barcode: bool = False) -> None:
        self._session = session
        self._executor = executor
        self.session_id = session.session_id
        self.sample_rate = session.raw_sample_rate
        self.fanout = RingTickFanout()
        self.events = EventBus()
        self.ingest_log: IngestLog | None = IngestLog() if debug_barcode else None
        self._edges = _SpeechEdges(session, self.events)
        session.subscribe(_BarcodeStamper(self.fanout) if debug_barcode else self.fanout)
        session.subscribe(self._edges)

    async def feed_pcm(self, pcm: np.ndarray, sample_rate: int) -> float:
        loop = asyncio.get_running_loop()
        arrived = time.time()
        try:
            async with self._session.feed_order:
                result = await loop.run_in_executor(self._executor, self._session.push_pcm, pcm, sample_rate)
        except SpeechQueueFullError as e:
            queued = self._session.schedule.queued_samples(self._session.playhead) / ENGINE_SAMPLE_RATE
            raise SpeechBacklogFullError(str(e), queued_seconds=queued, retry_after_s=e.retry_after) from None
        if self.ingest_log is not None and result.placement is not None:
            self.ingest_log.record(arrived, result.placement.start_sample)
        return result.queued_samples / ENGINE_SAMPLE_RATE

    async def finalize(self) -> None:
        loop = asyncio.get_running_loop()
        async with self._session.feed_order:
            await loop.run_in_executor(self._executor, self._session.finalize)

    async def interrupt(self) -> float:
        loop = asyncio.get_running_loop()
        async with self._session.feed_order:
            dropped = await loop.run_in_executor(self._executor, self._session.interrupt)
        if dropped > 0:
            self._edges.interrupted = True
        return dropped

    def touch(self) -> None:
        self._session.touch()
