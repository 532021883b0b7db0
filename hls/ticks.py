"""Validation of the (frame, audio) ticks a sink accepts: one frame and exactly 1/fps s of audio each.

Why strict: a sink encodes frames and samples as two independent counts; ffmpeg derives their
timestamps from those counts alone. A single short audio slice or skipped frame would shift one
stream against the other for the rest of the session, so every deviation is refused up front.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from models.types import AudioSlice, VideoFrame


def samples_for_tick(tick: int, sample_rate: int, fps: int) -> int:
    """Samples belonging to the sink's ``tick``-th tick, so that n ticks hold exactly n·rate/fps samples
    (rounded down) even when rate/fps is not an integer."""
    return (tick + 1) * sample_rate // fps - tick * sample_rate // fps


@dataclass(slots=True)
class TickValidator:
    """Checks shapes, dtypes, rates and index continuity; ``accept`` returns the raw bytes to pipe."""

    width: int
    height: int
    fps: int
    sample_rate: int
    ticks: int = 0
    next_index: int | None = None
    _last_image: np.ndarray | None = field(default=None, repr=False)
    _last_i420: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.width % 2 or self.height % 2:
            size = f"{self.width}x{self.height}"
            raise ValueError(f"frame size must be positive and even for yuv420p, got {size}")
        if self.fps <= 0 or self.sample_rate <= 0:
            raise ValueError(f"fps and sample_rate must be positive, got {self.fps}, {self.sample_rate}")

    def check(self, frame: VideoFrame, audio: AudioSlice) -> tuple[bytes, bytes]:
        """Validate one tick without consuming it; returns (I420 bytes, s16le bytes).

        The RGB→I420 conversion (BT.601 limited range, ffmpeg's default for rawvideo input) runs
        here in OpenCV, which releases the GIL, instead of in ffmpeg's swscale.
        """
        image = frame.image
        if image.shape != (self.height, self.width, 3) or image.dtype != np.uint8:
            raise ValueError(
                f"frame {frame.index}: expected ({self.height}, {self.width}, 3) uint8, "
                f"got {image.shape} {image.dtype}"
            )
        if audio.index != frame.index:
            raise ValueError(f"audio slice index {audio.index} != frame index {frame.index}")
        if self.next_index is not None and frame.index != self.next_index:
            raise ValueError(f"tick index {frame.index} is not the next one ({self.next_index})")
        if audio.sample_rate != self.sample_rate:
            raise ValueError(f"audio sample rate {audio.sample_rate} != sink rate {self.sample_rate}")
        pcm = audio.pcm
        want = samples_for_tick(self.ticks, self.sample_rate, self.fps)
        if pcm.ndim != 1 or pcm.dtype != np.int16 or pcm.shape[0] != want:
            got = f"{pcm.shape} {pcm.dtype}"
            raise ValueError(f"tick {frame.index}: expected ({want},) int16 audio, got {got}")
        return self._i420(image), pcm.astype("<i2", copy=False).tobytes()

    def _i420(self, image: np.ndarray) -> bytes:
        """The frame as I420 bytes; a read-only picture sent again (a stale tick's repeat, a still
        frame at rest) reuses the previous conversion. Only read-only arrays: a writeable one
        could have been changed in place since."""
        if image is self._last_image:
            return self._last_i420
        i420 = cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420).reshape(-1).tobytes()
        if not image.flags.writeable:
            self._last_image, self._last_i420 = image, i420
        else:
            self._last_image, self._last_i420 = None, b""
        return i420

    def commit(self, frame: VideoFrame) -> None:
        """Record that the tick checked last was queued."""
        self.ticks += 1
        self.next_index = frame.index + 1
