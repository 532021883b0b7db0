"""AvatarStream: a voice agent's speech in, the face's frames with their audio out, one per tick.

Why this shape: an agent framework hands us TTS audio in bursts (faster than real time, in any
chunking, at its own sample rate) and plays what we give back at wall-clock pace. The avatar is a
clock, like a server session (docs/DESIGN.md): every tick produces exactly one frame, carrying the
1/25 s of speech audio it animates or none (idle). Speech and idle share one engine stream, so the
face never jumps between them; the transport shows frame ``n`` together with its audio, so lip
sync is exact by construction (both carry the same timeline index).

Latency: the engine needs ``lookahead`` frames of audio after frame ``n`` before it can render
``n`` (200 ms for the CPU engine). Slots are filled lazily: at the tick that outputs frame ``n``
the stream is given slot ``n + lookahead``, speech if enough is buffered then, silence otherwise.
Speech pushed at time t is therefore on screen ``lookahead`` + at most one tick later — no extra
scheduling lead. A jitter cushion (``cushion_ms``) delays an utterance's first slot until that
much more speech is buffered, so a TTS that streams at exactly real time does not run dry between
ticks; when it does run dry the utterance pauses one silent slot and re-buffers (no audio is lost).

Barge-in: ``clear`` drops the buffered speech and, with a ``Rewindable`` stream (the CPU engine),
rewinds the engine to the next frame so that frame is already idle; other engines drop what they
have not consumed and finish the at most ``lookahead`` frames they already hold.

Pure logic: no clock, no threads. The caller ticks it (``facestream.pacing``). Not thread-safe.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from models.engines.base import EngineStream, Rewindable
from models.types import ENGINE_SAMPLE_RATE, FPS, SAMPLES_PER_FRAME
from server.session.audio.resample import StreamResampler

DEFAULT_CUSHION_MS = 40.0
"""Speech buffered beyond one whole frame before an utterance starts: absorbs the arrival jitter of
a TTS that streams at exactly real time (in 20 ms chunks). Each time the buffer runs dry mid-
utterance a silent slot is inserted and the rest of the utterance plays 40 ms later, so too small
a cushion ratchets latency up on a loaded machine (measured: 20 ms gave p50 0.17-0.38 s from run
to run at load 7, 40 ms a steady ~0.22 s)."""
STALE_TICKS = 2
"""A partial frame of speech left this many ticks without new audio is played padded."""


@dataclass(frozen=True, slots=True)
class AvatarFrame:
    """One tick's output: the frame at timeline ``index`` and the speech audio it animates."""

    index: int
    image: np.ndarray  # (H, W, 3) uint8 RGB
    audio: np.ndarray | None  # (sample_rate / 25,) int16 mono; None where the face idles
    sample_rate: int
    speech: bool  # the engine rendered this frame from speech (mouth driven by the voice)
    segment_end: bool = False  # the last frame of a segment closed by ``end_segment``
    jaw_open: float = 0.0  # the motion the engine commanded (diagnostics; 0 for non-CPU engines)

    @property
    def pts_s(self) -> float:
        return self.index / FPS


@dataclass(slots=True)
class _Speech:
    """Buffered speech, as engine audio (16 kHz float) and output audio (int16 at output rate)."""

    engine: np.ndarray
    out: np.ndarray


class AvatarStream:
    """Speech audio in (any rate, any chunking), one ``AvatarFrame`` per ``tick``.

    ``output_rate`` must be a multiple of 25 (8, 16, 22.05, 24, 44.1, 48 kHz all are).
    """

    def __init__(
        self,
        stream: EngineStream,
        output_rate: int = 24_000,
        cushion_ms: float = DEFAULT_CUSHION_MS,
    ) -> None:
        if output_rate % FPS:
            raise ValueError(f"output_rate must be a multiple of {FPS}")
        if cushion_ms < 0:
            raise ValueError("cushion_ms must be >= 0")
        self._stream = stream
        self.output_rate = output_rate
        self.out_per_frame = output_rate // FPS
        self.lookahead = stream.lookahead_frames
        self._start_samples = self.out_per_frame + round(cushion_ms * output_rate / 1000)
        self._to_engine = StreamResampler(ENGINE_SAMPLE_RATE)
        self._to_out = StreamResampler(output_rate)
        self._engine_fifo = np.zeros(0, np.float32)
        self._out_fifo = np.zeros(0, np.int16)
        self._segment_ends: deque[int] = deque()  # output-FIFO sample offsets where segments end
        self._speaking = False  # inside an utterance (the cushion has been met)
        self._idle_ticks = 0  # ticks since audio was last pushed
        self._slot = 0  # next timeline slot to push to the engine
        self._next = 0  # next frame index to output
        self._ready: dict[int, tuple[np.ndarray, bool]] = {}  # slot -> (output audio, ends segment)
        self._frames: deque = deque()  # engine frames not yet output
        for _ in range(self.lookahead):
            self._fill_slot(silent=True)

    # -- input ----------------------------------------------------------------------------------
    def push_audio(self, pcm: np.ndarray, sample_rate: int) -> None:
        """Buffer speech (int16 or float in [-1, 1], mono) to be played from the next free slot."""
        samples = _as_float(pcm)
        if not len(samples):
            return
        self._engine_fifo = np.concatenate([self._engine_fifo, self._to_engine.process(samples, sample_rate)])
        out = self._to_out.process(samples, sample_rate)
        self._out_fifo = np.concatenate([self._out_fifo, _as_int16(out)])
        self._idle_ticks = 0

    def end_segment(self) -> None:
        """The speech pushed so far is a whole segment (a TTS utterance ended): play its tail
        padded to a whole frame, and flag that frame ``segment_end``."""
        self._drain_resamplers()
        if len(self._out_fifo) and (not self._segment_ends or self._segment_ends[-1] < len(self._out_fifo)):
            self._segment_ends.append(len(self._out_fifo))

    def clear(self) -> float:
        """Barge-in: drop all speech not yet shown; returns the seconds dropped.

        With a ``Rewindable`` engine stream the very next frame is idle; otherwise the frames the
        engine already holds (at most ``lookahead``) still play, silently.
        """
        dropped = len(self._out_fifo) / self.output_rate
        dropped += sum(1 for s in self._ready if s >= self._next) / FPS
        self._drain_resamplers()
        self._engine_fifo = np.zeros(0, np.float32)
        self._out_fifo = np.zeros(0, np.int16)
        self._segment_ends.clear()
        self._speaking = False
        if isinstance(self._stream, Rewindable):
            self._stream.rewind(self._next)
            self._frames.clear()
            self._ready.clear()
            self._slot = self._next
            for _ in range(self.lookahead):
                self._fill_slot(silent=True)
        else:
            self._ready = {s: (audio, end) for s, (audio, end) in self._ready.items() if s < self._next}
        return dropped

    @property
    def buffered_s(self) -> float:
        """Speech waiting to be played (not yet given to the engine)."""
        return len(self._out_fifo) / self.output_rate

    @property
    def pending_frames(self) -> int:
        """Speech frames the engine holds that have not been output yet."""
        return sum(1 for s in self._ready if s >= self._next)

    @property
    def next_index(self) -> int:
        return self._next

    # -- output ---------------------------------------------------------------------------------
    def tick(self) -> AvatarFrame:
        """Produce the next frame: give the engine one more slot, return the frame it finished."""
        self._idle_ticks += 1
        while not self._frames:
            self._fill_slot(silent=False)
        frame = self._frames.popleft()
        index = self._next
        self._next += 1
        if frame.index != index:
            raise RuntimeError(f"engine returned frame {frame.index}, expected {index}")
        audio, ends = self._ready.pop(index, (None, False))
        motion = frame.motion
        return AvatarFrame(
            index=index,
            image=frame.image,
            audio=audio,
            sample_rate=self.output_rate,
            speech=bool(frame.speech),
            segment_end=ends,
            jaw_open=float(motion.jaw_open) if motion is not None else 0.0,
        )

    def close(self) -> None:
        """Release the engine stream (idempotent)."""
        self._stream.close()

    # -- internals ------------------------------------------------------------------------------
    def _fill_slot(self, silent: bool) -> None:
        take = 0 if silent else self._speech_to_take()
        slot = self._slot
        self._slot += 1
        if take:
            n = min(SAMPLES_PER_FRAME, round(take * ENGINE_SAMPLE_RATE / self.output_rate))
            engine_pcm = self._engine_fifo[:n]
            self._engine_fifo = self._engine_fifo[n:]
            if len(engine_pcm) < SAMPLES_PER_FRAME:  # a padded last frame, or resampler delay
                engine_pcm = np.pad(engine_pcm, (0, SAMPLES_PER_FRAME - len(engine_pcm)))
            out = self._out_fifo[:take]
            if len(out) < self.out_per_frame:
                out = np.pad(out, (0, self.out_per_frame - len(out)))
            self._out_fifo = self._out_fifo[take:]
            ends = False
            while self._segment_ends and self._segment_ends[0] <= take:
                self._segment_ends.popleft()
                ends = True
            self._segment_ends = deque(e - take for e in self._segment_ends)
            self._ready[slot] = (out, ends)
            if ends and not len(self._out_fifo):
                self._speaking = False
        else:
            engine_pcm = np.zeros(SAMPLES_PER_FRAME, np.float32)
        self._frames.extend(self._stream.push_audio(engine_pcm))

    def _speech_to_take(self) -> int:
        """Output samples the next slot takes from the FIFO (0: the slot is silent)."""
        have = len(self._out_fifo)
        if not have:
            self._speaking = False
            return 0
        closing = bool(self._segment_ends) and self._segment_ends[0] <= self.out_per_frame
        if not self._speaking:
            ready = have >= self._start_samples or bool(self._segment_ends)
            if not ready and self._idle_ticks < STALE_TICKS:
                return 0
            self._speaking = True
        if have >= self.out_per_frame:
            return self._segment_ends[0] if closing else self.out_per_frame
        if closing:
            return self._segment_ends[0]  # a segment's last partial frame, padded
        if self._idle_ticks >= STALE_TICKS:
            return have  # a stalled feed's last partial frame, padded
        self._speaking = False  # ran dry mid-utterance: one silent slot, then re-buffer
        return 0

    def _drain_resamplers(self) -> None:
        self._engine_fifo = np.concatenate([self._engine_fifo, self._to_engine.flush()])
        self._out_fifo = np.concatenate([self._out_fifo, _as_int16(self._to_out.flush())])


def _as_float(pcm: np.ndarray) -> np.ndarray:
    a = np.asarray(pcm)
    if a.ndim != 1:
        raise ValueError("audio must be mono (1-D)")
    if a.dtype == np.int16:
        return a.astype(np.float32) / 32768.0
    return np.clip(a.astype(np.float32, copy=False), -1.0, 1.0)


def _as_int16(pcm: np.ndarray) -> np.ndarray:
    """The inverse of ``_as_float`` (× 32768), so same-rate int16 audio passes through bit-exact."""
    return np.clip(np.round(pcm * 32768.0), -32768, 32767).astype(np.int16)
