"""Adapter: a Session seen through ``server.realtime.port.RealtimeSessionPort`` (WebSocket, SSE, WebRTC).

The real-time routes were written against a port; this is the server's side of it. One adapter
per session (``SessionRegistry.realtime(session_id)`` creates it on first use): it subscribes a
tick fan-out and a speech-edge watcher to the session clock, runs ingest off the event loop and
translates the session's errors into the port's.

Events published: ``speech_started`` / ``speech_ended`` at the first / after the last frame of each
scheduled utterance (a run on the timeline, so pauses inside one chunk do not split it),
``interrupted`` + ``speech_ended(interrupted=True)`` on barge-in, ``final_accepted``, ``complete``
or ``error`` when the session finishes; the bus closes with the session.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor

import numpy as np

from models.types import ENGINE_SAMPLE_RATE, FPS, AudioSlice, VideoFrame
from server.errors import SpeechQueueFullError
from server.realtime import protocol
from server.realtime.errors import SpeechBacklogFullError
from server.realtime.events import EventBus
from server.realtime.ticks import RingTickFanout
from server.session import Session
from server.state import SessionState


class _SpeechEdges:
    """Tick subscriber that turns timeline runs into speech_started / speech_ended events."""

    def __init__(self, session: Session, events: EventBus) -> None:
        self._session = session
        self._events = events
        self._speaking = False
        self.interrupted = False

    def publish(self, frame: VideoFrame, audio: AudioSlice) -> None:
        speaking = self._session.schedule.is_speech_frame(frame.index)
        if speaking and not self._speaking:
            self._events.publish(protocol.speech_started(frame.index, FPS))
        elif self._speaking and not speaking:
            self._events.publish(protocol.speech_ended(frame.index, FPS, interrupted=self.interrupted))
            self.interrupted = False
        self._speaking = speaking

    def close(self) -> None:
        state = self._session.state
        if state is SessionState.COMPLETE:
            self._events.publish(protocol.complete())
        elif state is SessionState.FAILED:
            self._events.publish(protocol.error("session_failed", self._session.error or "session failed"))
        self._events.close()


class RealtimeSessionAdapter:
    def __init__(self, session: Session, executor: Executor) -> None:
        self._session = session
        self._executor = executor
        self.session_id = session.session_id
        self.sample_rate = session.raw_sample_rate
        self.fanout = RingTickFanout()
        self.events = EventBus()
        self._edges = _SpeechEdges(session, self.events)
        session.subscribe(self.fanout)
        session.subscribe(self._edges)

    async def feed_pcm(self, pcm: np.ndarray, sample_rate: int) -> float:
        loop = asyncio.get_running_loop()
        try:
            async with self._session.feed_order:
                result = await loop.run_in_executor(self._executor, self._session.push_pcm, pcm, sample_rate)
        except SpeechQueueFullError as e:
            queued = self._session.schedule.queued_samples(self._session.playhead) / ENGINE_SAMPLE_RATE
            raise SpeechBacklogFullError(str(e), queued_seconds=queued, retry_after_s=e.retry_after) from None
        return result.queued_samples / ENGINE_SAMPLE_RATE

    async def finalize(self) -> None:
        loop = asyncio.get_running_loop()
        async with self._session.feed_order:
            await loop.run_in_executor(self._executor, self._session.finalize)
        self.events.publish(protocol.final_accepted())

    async def interrupt(self) -> float:
        loop = asyncio.get_running_loop()
        async with self._session.feed_order:
            dropped = await loop.run_in_executor(self._executor, self._session.interrupt)
        if dropped > 0:
            self._edges.interrupted = True
        self.events.publish(protocol.interrupted(dropped))
        return dropped

    def touch(self) -> None:
        self._session.touch()
