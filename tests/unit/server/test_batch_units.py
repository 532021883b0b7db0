"""Pure parts of the whole-audio path: timeline audio framing, the deferred render loop on a real
InferenceExecutor (with a fake engine stream), and segment retention's deletion schedule."""

from __future__ import annotations

import threading
from concurrent.futures import Executor, Future
from pathlib import Path

import numpy as np

from models.types import SAMPLES_PER_FRAME, AudioSlice, VideoFrame
from server.compute.executor import InferenceExecutor
from server.compute.offline import OfflineRender, RenderCancelledError, TimelineAudio
from server.session.audio.decode import DecodedAudio
from server.sinks.recording import SegmentRetention, ts_segments_on_disk


class _Stream:
    """Returns one frame per 640 samples heard, ``lookahead`` frames behind, the rest on flush."""

    def __init__(self, lookahead: int = 2) -> None:
        self.heard, self.sent, self.lookahead = 0, 0, lookahead

    def _emit(self, upto: int) -> list[VideoFrame]:
        out = [VideoFrame(i, np.zeros((4, 4, 3), np.uint8)) for i in range(self.sent, max(self.sent, upto))]
        self.sent = max(self.sent, upto)
        return out

    def push_audio(self, pcm: np.ndarray, context: np.ndarray | None = None) -> list[VideoFrame]:
        self.heard += len(pcm)
        return self._emit(self.heard // SAMPLES_PER_FRAME - self.lookahead)

    def flush(self) -> list[VideoFrame]:
        return self._emit(-(-self.heard // SAMPLES_PER_FRAME))

    def close(self) -> None:
        pass


class _Sink:
    def __init__(self) -> None:
        self.ticks: list[tuple[int, int]] = []

    def write(self, frame: VideoFrame, audio: AudioSlice) -> None:
        self.ticks.append((frame.index, len(audio.pcm)))


def test_timeline_audio_pads_to_whole_frames_and_slices_exactly() -> None:
    audio = DecodedAudio(np.full(22050 + 7, 0.5, np.float32), 22050, "wav")
    t = TimelineAudio.from_decoded(audio, 44100)
    assert t.frames == 26 and len(t.engine_pcm) == 26 * SAMPLES_PER_FRAME
    assert len(t.output_pcm) == 26 * 44100 // 25
    assert sum(len(t.slice_for(i).pcm) for i in range(t.frames)) == len(t.output_pcm)


def test_offline_render_writes_every_frame_once_in_order() -> None:
    executor = InferenceExecutor(1)
    try:
        t = TimelineAudio.from_decoded(
            DecodedAudio(np.zeros(16000 * 3 + 100, np.float32), 16000, "raw"), 48000
        )
        sink, done = _Sink(), []
        job = OfflineRender(_Stream(), t, sink, executor, done.append, step_frames=7, defer_s=0.0)
        job.start()
        assert job.wait(10)
        assert done == [None]
        assert [i for i, _ in sink.ticks] == list(range(t.frames)) and t.frames == 76
        assert all(n == 1920 for _, n in sink.ticks)
    finally:
        executor.close()


class _OrderSink(_Sink):
    """Records each render write into a list shared with other jobs, to see who ran first."""

    def __init__(self, order: list[str]) -> None:
        super().__init__()
        self.order = order

    def write(self, frame: VideoFrame, audio: AudioSlice) -> None:
        self.order.append("render")
        super().write(frame, audio)


def test_offline_render_yields_to_an_earlier_deadline() -> None:
    executor = InferenceExecutor(1)
    order: list[str] = []
    gate = threading.Event()
    try:
        t = TimelineAudio.from_decoded(DecodedAudio(np.zeros(16000 * 2, np.float32), 16000, "raw"), 48000)
        executor.submit(0.0, lambda: gate.wait(5))  # occupy the only worker while both are queued
        done: list[BaseException | None] = []
        sink = _OrderSink(order)
        job = OfflineRender(_Stream(), t, sink, executor, done.append, step_frames=5, defer_s=100.0)
        job.start()
        executor.submit(1.0, lambda: order.append("live"))  # due long before the render's deferred steps
        gate.set()
        assert job.wait(10)
        assert done == [None]
        assert order[0] == "live" and order.count("render") == t.frames, order[:5]
    finally:
        executor.close()


def test_a_cancelled_offline_render_writes_nothing_more_and_reports_cancellation() -> None:
    executor = InferenceExecutor(1)
    gate = threading.Event()
    try:
        t = TimelineAudio.from_decoded(DecodedAudio(np.zeros(16000 * 2, np.float32), 16000, "raw"), 48000)
        executor.submit(0.0, lambda: gate.wait(5))
        done: list[BaseException | None] = []
        sink = _Sink()
        job = OfflineRender(_Stream(), t, sink, executor, done.append, step_frames=5, defer_s=100.0)
        job.start()
        job.cancel()
        gate.set()
        assert job.wait(5)
        assert sink.ticks == [] and isinstance(done[0], RenderCancelledError)
    finally:
        executor.close()


class _Inline(Executor):
    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        f: Future = Future()
        f.set_result(fn(*args, **kwargs))
        return f


def test_segment_retention_keeps_the_newest_segments(tmp_path: Path) -> None:
    for n in range(1, 13):
        (tmp_path / f"seg_{n:05d}.ts").write_bytes(b"x")
    (tmp_path / "playlist.m3u8").write_text("")
    keep = SegmentRetention(tmp_path, keep_segments=4, segment_frames=25, executor=_Inline())
    for tick in range(12 * 25):
        keep.publish(
            VideoFrame(tick, np.zeros((2, 2, 3), np.uint8)), AudioSlice(tick, np.zeros(0, np.int16), 48000)
        )
    assert [p.name for p in ts_segments_on_disk(tmp_path)] == [f"seg_{n:05d}.ts" for n in range(9, 13)]
    assert (tmp_path / "playlist.m3u8").exists()
