"""SpeechSchedule: accepted speech, its place on the timeline, and the audio each consumer reads.

One object, three callers:
* the feed route (``accept``): resample the decoded chunk (stateful, both rates), queue it and place
  it on the timeline — under the *ingest lock*, so chunks keep their order;
* the producer (``claim``): the next piece of timeline audio for the engine — speech from the
  AudioChunkBuffer's windows or silence — claimed under the *timeline lock* so that no later chunk
  can be scheduled where the engine already listened;
* the clock (``output_slice``): exactly one frame of output-rate audio, speech or silence.

The resamplers hold back a few ms of output until more input arrives. When the producer needs those
samples now (the speech pauses), it flushes them (``_flush``) under the ingest lock and retries.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from models.types import ENGINE_SAMPLE_RATE
from server.session.audio.chunk_buffer import AudioChunkBuffer, AudioWindow
from server.session.audio.decode import DecodedAudio
from server.session.audio.output_buffer import OutputAudioBuffer
from server.session.audio.resample import StreamResampler
from server.session.timeline import Block, Placement, SpeechTimeline, frame_bounds


@dataclass(frozen=True, slots=True)
class Claim:
    """Timeline audio the engine must consume next; ``context`` is the window's overlap (first piece only)."""

    block: Block
    pcm: np.ndarray
    context: np.ndarray | None


class SpeechSchedule:
    def __init__(
        self,
        lead_frames: int,
        window_samples: int,
        max_pending_samples: int,
        overlap: float = 0.2,
        out_rate: int = 48_000,
    ) -> None:
        self.out_rate = out_rate
        self.timeline = SpeechTimeline(lead_frames)
        self.buffer = AudioChunkBuffer(window_samples, max_pending_samples, overlap)
        self.output = OutputAudioBuffer(out_rate)
        self._to_engine = StreamResampler(ENGINE_SAMPLE_RATE)
        self._to_output = StreamResampler(out_rate)
        self._ingest_lock = threading.Lock()  # resamplers + appends, in chunk order
        self._lock = threading.Lock()  # timeline + current window
        self._window: AudioWindow | None = None
        self.speech_samples_accepted = 0

    # -- ingest --------------------------------------------------------------------------------
    def accept(
        self, audio: DecodedAudio | None, final: bool, playhead_of: Callable[[], int]
    ) -> Placement | None:
        """Queue a decoded chunk (or only mark the end) and place it; thread-safe, keeps call order.

        ``playhead_of()`` returns the clock's next frame; it is read under the lock so that the
        placement reflects the moment of scheduling. Raises SpeechQueueFullError before changing
        anything if the chunk does not fit.
        """
        with self._ingest_lock:
            if self.timeline.final:
                raise RuntimeError("speech already finalized")
            placement = None
            if audio is not None and len(audio.pcm):
                n16 = self._to_engine.expected_increment(len(audio.pcm), audio.sample_rate)
                n_out = self._to_output.expected_increment(len(audio.pcm), audio.sample_rate)
                self.buffer.check_room(n16)
                self.buffer.append(self._to_engine.process(audio.pcm, audio.sample_rate))
                self.output.append(self._to_output.process(audio.pcm, audio.sample_rate))
                if n16 > 0:
                    with self._lock:
                        placement = self.timeline.schedule(n16, playhead_of(), n_out)
                    self.speech_samples_accepted += n16
            if final:
                self._flush_locked()
                with self._lock:
                    self.timeline.finalize(playhead_of())
            return placement

    def _flush_locked(self) -> None:
        self.buffer.append(self._to_engine.flush())
        self.output.append(self._to_output.flush())

    def _holding(self) -> bool:
        return any(r.emitted < r.expected for r in (self._to_engine, self._to_output))

    def interrupt(self, at: int | None = None) -> float:
        """Drop every speech sample after timeline sample ``at`` (default: what the engine has not
        consumed yet; an earlier ``at`` rewinds the producer's cursor, see ``SpeechTimeline.truncate``);
        returns the seconds dropped."""
        with self._ingest_lock:
            self._flush_locked()
            with self._lock:
                dropped = self.timeline.truncate(self.out_rate, at)
                self.buffer.drop_pending()
                self._window = None
                # the cut speech's output audio is never read: free it now, not when the clock
                # passes (it never would: later speech starts at fresh stream positions)
                runs = self.timeline.runs
                self.output.drop_from(max((r.out_end for r in runs), default=0))
        return dropped / ENGINE_SAMPLE_RATE

    # -- producer ------------------------------------------------------------------------------
    def claim(self, want: int) -> Claim:
        """Claim the next ≤ ``want`` samples of timeline audio for the engine (never blocks on the clock)."""
        for _ in range(3):
            with self._lock:
                claim = self._claim_locked(want)
            if claim is not None:
                return claim
            with self._ingest_lock:
                self._flush_locked()
        raise RuntimeError("scheduled speech is missing from the buffer")  # pragma: no cover - a bug

    def _claim_locked(self, want: int) -> Claim | None:
        tl = self.timeline
        block = tl.next_block(1 << 40)
        if not block.is_speech:
            last = tl.runs[-1] if tl.runs else None
            if last is not None and last.open and last.end_sample <= block.start and self._holding():
                return None  # the run's held-back tail must reach the output buffer first
            piece = Block(block.start, min(want, block.length), None)
            tl.consume(piece)
            return Claim(piece, np.zeros(piece.length, np.float32), None)
        offset = block.speech_offset
        assert offset is not None
        window = self._window
        if window is None or offset >= window.end:
            window = self.buffer.take(max_samples=block.length)
            if window is None:
                return None  # held back in the resampler: flush, then retry
            if window.offset != offset:  # pragma: no cover - would be a scheduling bug
                raise RuntimeError(f"speech window at {window.offset}, timeline expects {offset}")
            self._window = window
        n = min(want, block.length, window.end - offset)
        piece = Block(block.start, n, offset)
        tl.consume(piece)
        start = offset - window.offset
        context = window.context if start == 0 else None
        return Claim(piece, window.pcm[start : start + n], context)

    # -- clock ---------------------------------------------------------------------------------
    def output_slice(self, frame: int) -> np.ndarray:
        """Frame ``frame``'s output audio (int16); also forgets what lies before it."""
        f0, f1 = frame_bounds(frame, self.out_rate)
        out = np.zeros(f1 - f0, np.int16)
        with self._lock:
            pieces = self.timeline.output_pieces(frame, self.out_rate)
            self.timeline.prune(frame)
        for p in pieces:
            self.output.read_into(out, p.dst, p.speech_offset, p.length)
        if pieces:
            self.output.discard_before(pieces[-1].speech_offset + pieces[-1].length)
        return out

    # -- queries -------------------------------------------------------------------------------
    def queued_samples(self, playhead: int) -> int:
        with self._lock:
            return self.timeline.queued_samples(playhead)

    def is_speech_frame(self, frame: int) -> bool:
        with self._lock:
            return self.timeline.is_speech_frame(frame)

    @property
    def final(self) -> bool:
        return self.timeline.final

    @property
    def end_frame(self) -> int | None:
        return self.timeline.end_frame

    @property
    def consumed(self) -> int:
        return self.timeline.consumed
