"""Where speech goes on a session's 25 fps timeline. Pure: every method takes the playhead as an argument.

The timeline is the session's single source of truth (DESIGN.md, "every session is a clock").
Positions are counted in *timeline samples* at the engine rate (16 kHz, 640 per frame); speech
is one continuous *speech stream* (everything ever accepted, in order) cut into **runs**: each run
maps a range of the speech stream onto the timeline starting at a frame boundary. Everything
outside runs is silence (idle animation).

Scheduling rule: a new chunk continues the last run when that run is still *open* (the engine has
not consumed timeline audio past its end), so speech fed faster than real time plays gap-free.
Otherwise it starts a new run at the earliest frame >= playhead + lead and >= what the engine has
already consumed. ``lead`` = engine lookahead + processing margin: the time the producer needs to
render the first speech frame before its deadline. A pause between chunks is just silence; the
speech after it keeps sample-exact A/V lock because both audio and video derive from this map.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.types import ENGINE_SAMPLE_RATE, FPS, SAMPLES_PER_FRAME

SPF = SAMPLES_PER_FRAME


@dataclass(slots=True)
class SpeechRun:
    """Speech-stream samples [speech_start, speech_end) played from timeline frame ``start_frame``."""

    start_frame: int
    speech_start: int
    speech_end: int
    out_start: int  # the same speech at the output rate: [out_start, out_end) of the output stream
    out_end: int
    open: bool = True  # may still be extended by the next chunk

    @property
    def start_sample(self) -> int:
        return self.start_frame * SPF

    @property
    def end_sample(self) -> int:
        return self.start_sample + self.speech_end - self.speech_start

    @property
    def end_frame(self) -> int:
        """First frame after the run (frames that contain any of its speech are < end_frame)."""
        return -(-self.end_sample // SPF)


@dataclass(frozen=True, slots=True)
class Block:
    """The next piece of timeline audio the engine must consume, from timeline sample ``start``.

    ``speech_offset`` is the speech-stream position for speech blocks, None for silence.
    """

    start: int
    length: int
    speech_offset: int | None

    @property
    def is_speech(self) -> bool:
        return self.speech_offset is not None


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an accepted chunk landed: its first timeline sample and whether it opened a new run."""

    start_sample: int
    new_run: bool

    @property
    def start_frame(self) -> int:
        return self.start_sample // SPF

    @property
    def start_seconds(self) -> float:
        return self.start_sample / ENGINE_SAMPLE_RATE


@dataclass(frozen=True, slots=True)
class OutputPiece:
    """Part of a frame's output audio that is speech: ``length`` samples of the output-rate speech
    stream from ``speech_offset`` go to sample ``dst`` of the frame's slice."""

    dst: int
    speech_offset: int
    length: int


def frame_bounds(frame: int, rate: int) -> tuple[int, int]:
    """[start, end) of ``frame`` in samples at ``rate`` (exact for rates that are not multiples of 25)."""
    return frame * rate // FPS, (frame + 1) * rate // FPS


class SpeechTimeline:
    """The schedule of one session. Not thread-safe: the session serialises access with its lock."""

    def __init__(self, lead_frames: int) -> None:
        if lead_frames < 1:
            raise ValueError("lead_frames must be >= 1")
        self.lead_frames = lead_frames
        self.runs: list[SpeechRun] = []
        self.speech_total = 0  # speech-stream samples scheduled so far (engine rate)
        self.out_total = 0  # the same at the output rate
        self.consumed = 0  # timeline samples the engine has consumed (the producer's cursor)
        self.final = False
        self.end_frame: int | None = None  # set by finalize: the timeline stops before this frame

    # -- ingest side -------------------------------------------------------------------------
    def schedule(self, n_samples: int, playhead: int, n_out: int = 0) -> Placement:
        """Append ``n_samples`` of speech (``n_out`` at the output rate); returns where it starts.

        ``playhead`` = the next frame the clock will emit. Output-rate positions are tracked
        separately (not derived by scaling) so rounding never accumulates over many runs.
        """
        if self.final:
            raise RuntimeError("timeline already finalized")
        if n_samples <= 0:
            raise ValueError("n_samples must be positive")
        last = self.runs[-1] if self.runs else None
        if last is not None and last.open and last.end_sample >= self.consumed:
            start = last.end_sample
            last.speech_end += n_samples
            last.out_end += n_out
            self.speech_total += n_samples
            self.out_total += n_out
            return Placement(start, new_run=False)
        if last is not None:
            last.open = False
        start_frame = max(playhead + self.lead_frames, -(-self.consumed // SPF))
        if last is not None:
            start_frame = max(start_frame, last.end_frame)
        run = SpeechRun(
            start_frame,
            self.speech_total,
            self.speech_total + n_samples,
            self.out_total,
            self.out_total + n_out,
        )
        self.runs.append(run)
        self.speech_total += n_samples
        self.out_total += n_out
        return Placement(run.start_sample, new_run=True)

    def finalize(self, playhead: int) -> int:
        """No more speech: the timeline ends after the last run (or soon, if there is none)."""
        self.final = True
        if self.runs:
            self.runs[-1].open = False
        self.end_frame = max(self.runs[-1].end_frame if self.runs else 0, playhead)
        return self.end_frame

    def truncate(self, out_rate: int, at: int | None = None) -> int:
        """Cut all speech after timeline sample ``at`` (default ``consumed``; barge-in); returns
        the engine-rate samples dropped.

        ``at`` before ``consumed`` rewinds the producer's cursor to ``at``: the caller must rewind
        its engine stream to the same sample (the engine re-listens to silence from there).
        Stream totals keep counting, so later speech continues at fresh stream positions.
        """
        at_sample = self.consumed if at is None else at
        if not 0 <= at_sample <= self.consumed:
            raise ValueError(f"cut at {at_sample} must lie in [0, consumed={self.consumed}]")
        self.consumed = at_sample
        dropped = 0
        keep: list[SpeechRun] = []
        for run in self.runs:
            if run.start_sample >= self.consumed:
                dropped += run.speech_end - run.speech_start
                continue
            if run.end_sample > self.consumed:
                cut = run.end_sample - self.consumed
                dropped += cut
                run.speech_end -= cut
                kept_out = (run.speech_end - run.speech_start) * out_rate // ENGINE_SAMPLE_RATE
                run.out_end = min(run.out_end, run.out_start + kept_out)
            run.open = False
            keep.append(run)
        self.runs = keep
        if self.final:  # the stream was to end after the dropped speech: it ends at the cut now
            self.end_frame = max(keep[-1].end_frame if keep else 0, -(-at_sample // SPF))
        return dropped

    def queued_samples(self, playhead: int) -> int:
        """Speech samples scheduled at or after ``playhead`` (not yet played)."""
        head = playhead * SPF
        queued = 0
        for run in reversed(self.runs):
            if run.end_sample <= head:
                break
            queued += run.end_sample - max(run.start_sample, head)
        return queued

    def speech_end_frame(self) -> int | None:
        return self.runs[-1].end_frame if self.runs else None

    # -- producer side -----------------------------------------------------------------------
    def next_block(self, max_samples: int) -> Block:
        """Timeline audio from ``consumed`` on, ≤ ``max_samples`` long, all speech or all silence."""
        pos = self.consumed
        for run in self._runs_from(pos):
            if run.start_sample <= pos < run.end_sample:
                n = min(max_samples, run.end_sample - pos)
                return Block(pos, n, run.speech_start + pos - run.start_sample)
            if run.start_sample > pos:
                return Block(pos, min(max_samples, run.start_sample - pos), None)
        return Block(pos, max_samples, None)

    def consume(self, block: Block) -> None:
        """The producer pushed ``block`` to the engine. Passing a run's end closes it for good."""
        if block.start != self.consumed:
            raise ValueError(f"block starts at {block.start}, expected {self.consumed}")
        self.consumed += block.length
        for run in reversed(self.runs):
            if not run.open:
                break
            if run.end_sample < self.consumed:
                run.open = False

    def run_needing_tail(self, upto: int) -> SpeechRun | None:
        """The open run whose end lies before timeline sample ``upto`` (the producer is about to
        consume its last samples, so any audio still held inside a resampler must come out now)."""
        last = self.runs[-1] if self.runs else None
        if last is not None and last.open and last.end_sample <= upto:
            return last
        return None

    # -- clock side --------------------------------------------------------------------------
    def output_pieces(self, frame: int, rate: int) -> list[OutputPiece]:
        """The speech parts of ``frame``'s output audio at ``rate`` (the rest is silence)."""
        f0, f1 = frame_bounds(frame, rate)
        pieces: list[OutputPiece] = []
        for run in self._runs_from(frame * SPF - SPF):
            if run.start_frame > frame:
                break
            r0 = run.start_frame * rate // FPS
            a, b = max(f0, r0), min(f1, r0 + run.out_end - run.out_start)
            if a < b:
                pieces.append(OutputPiece(a - f0, run.out_start + a - r0, b - a))
        return pieces

    def is_speech_frame(self, frame: int) -> bool:
        return any(r.start_frame <= frame < r.end_frame for r in self._runs_from(frame * SPF))

    def prune(self, before_frame: int) -> None:
        """Forget runs that ended before ``before_frame`` and that the producer has passed."""
        keep = 0
        while (
            keep < len(self.runs) - 1
            and self.runs[keep].end_frame < before_frame
            and self.runs[keep].end_sample <= self.consumed
        ):
            keep += 1
        if keep:
            del self.runs[:keep]

    def _runs_from(self, pos: int) -> list[SpeechRun]:
        return [r for r in self.runs if r.end_sample > pos]
