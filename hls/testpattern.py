"""Measurable test signals: frames that carry their own index as a barcode, and locatable audio.

Why in the package: end-to-end checks (sink tests, latency benchmarks, server tests) re-measure
what a viewer receives — the frame index decoded from pixels after H.264, the audio offset from
cross-correlation after AAC — instead of trusting internal counters.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.types import FPS, AudioSlice, VideoFrame

BARCODE_BITS = 16
_BLACK, _WHITE = 16, 235


def barcode_frame(index: int, width: int, height: int) -> np.ndarray:
    """RGB frame: a moving diagonal gradient, with ``index`` as 16 black/white cells across the top."""
    cell = width // BARCODE_BITS
    if cell < 8 or height < 2 * cell:
        raise ValueError(f"{width}x{height} is too small for a {BARCODE_BITS}-bit barcode")
    y, x = np.mgrid[0:height, 0:width]
    base = ((x + y + 4 * index) % 256).astype(np.uint8)
    image = np.stack([base, 255 - base, np.full_like(base, (index * 7) % 256)], axis=-1)
    bits = (index >> np.arange(BARCODE_BITS - 1, -1, -1)) & 1
    row = np.repeat(np.where(bits == 1, _WHITE, _BLACK).astype(np.uint8), cell)
    image[:cell, : row.size] = row[None, :, None]
    return np.ascontiguousarray(image)


def read_barcode(image: np.ndarray) -> int:
    """Index encoded by ``barcode_frame`` in a (decoded, lossy) RGB frame; cells read at their centres."""
    width = image.shape[1]
    cell = width // BARCODE_BITS
    q = cell // 4
    luma = image[q : cell - q].mean(axis=2)
    value = 0
    for b in range(BARCODE_BITS):
        v = luma[:, b * cell + q : (b + 1) * cell - q].mean()
        value = (value << 1) | int(v > (_BLACK + _WHITE) / 2)
    return value


def noise_audio(seconds: float, sample_rate: int, seed: int = 0, peak: int = 8000) -> np.ndarray:
    """Band-limited (100 Hz–6 kHz) seeded noise, int16: a sharp, unambiguous cross-correlation peak."""
    n = round(seconds * sample_rate)
    rng = np.random.default_rng(seed)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sample_rate)
    spec[(f < 100) | (f > min(6000, sample_rate / 2 * 0.9))] = 0
    x = np.fft.irfft(spec, n)
    return (x / np.abs(x).max() * peak).astype(np.int16)


def audio_offset_seconds(reference: np.ndarray, decoded: np.ndarray, sample_rate: int) -> float:
    """Delay of ``reference`` inside ``decoded`` (positive: it starts that much later), by FFT xcorr."""
    a = decoded.astype(np.float64)
    b = reference.astype(np.float64)
    n = 1 << int(np.ceil(np.log2(a.size + b.size)))
    xc = np.fft.irfft(np.fft.rfft(a, n) * np.conj(np.fft.rfft(b, n)), n)
    lag = int(np.argmax(xc))
    if lag >= a.size:  # circular wrap: only -b.size < lag < a.size can occur
        lag -= n
    return lag / sample_rate


def ticks(
    count: int, width: int, height: int, audio: np.ndarray, sample_rate: int, fps: int = FPS, start: int = 0
) -> Iterator[tuple[VideoFrame, AudioSlice]]:
    """``count`` ticks from ``start``: barcode frames with consecutive slices of ``audio``."""
    for k in range(start, start + count):
        a0, a1 = k * sample_rate // fps, (k + 1) * sample_rate // fps
        yield VideoFrame(k, barcode_frame(k, width, height)), AudioSlice(k, audio[a0:a1], sample_rate)


@dataclass(frozen=True, slots=True)
class DecodedMedia:
    """What a viewer gets back from a file: frame times + barcodes, and the audio on the same clock."""

    frame_times: np.ndarray  # seconds, presentation order
    frame_indices: np.ndarray  # barcode read from each decoded frame
    audio: np.ndarray  # mono float32, decoder output including any encoder priming
    audio_start: float  # seconds, pts of audio[0]
    sample_rate: int

    @property
    def video_end(self) -> float:
        return float(self.frame_times[-1] + (self.frame_times[1] - self.frame_times[0]))

    @property
    def audio_end(self) -> float:
        return self.audio_start + self.audio.size / self.sample_rate


def decode_media(path: str | Path) -> DecodedMedia:
    """Decode every frame and sample of ``path`` (TS, MP4) with PyAV, keeping presentation times."""
    import av

    times: list[float] = []
    indices: list[int] = []
    chunks: list[np.ndarray] = []
    audio_start: float | None = None
    rate = 0
    with av.open(str(path)) as container:
        streams = [s for s in (container.streams.video[:1] + container.streams.audio[:1])]
        for frame in container.decode(*streams):
            if isinstance(frame, av.VideoFrame):
                times.append(float(frame.time))
                indices.append(read_barcode(frame.to_ndarray(format="rgb24")))
            elif isinstance(frame, av.AudioFrame):
                if audio_start is None:
                    audio_start, rate = float(frame.time or 0.0), frame.sample_rate
                chunks.append(frame.to_ndarray().reshape(len(frame.layout.channels), -1)[0])
    order = np.argsort(times)
    return DecodedMedia(
        np.asarray(times)[order], np.asarray(indices)[order],
        np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32),
        audio_start or 0.0, rate,
    )  # fmt: skip
