"""Media helpers: WAV bytes, ffmpeg round trips, decoded audio and frames of a session's segments,
and cross-correlation to find speech in a decoded stream."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np


def wav_bytes(pcm: np.ndarray, rate: int) -> bytes:
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, pcm, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def raw_rgb_input(ffmpeg: str, width: int, height: int) -> list[str]:
    """ffmpeg arguments reading 25 fps raw RGB24 frames of ``width``×``height`` from stdin (the
    shape a test hands an encoder; add the output arguments after it)."""
    return [ffmpeg, "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
            "-r", "25", "-i", "-"]  # fmt: skip


def session_dir(storage: Path, sid: str) -> Path:
    return storage / sid


def all_segments(directory: Path) -> list[Path]:
    """A session's segment files in order, either HLS mode: TS ``seg_00001.ts``…, or LL-HLS
    ``init.mp4`` then ``seg_1.m4s``, ``seg_2.m4s``… (init first: together one fragmented MP4)."""
    ts = sorted(directory.glob("seg_*.ts"))
    if ts or not (directory / "init.mp4").exists():
        return ts
    fmp4 = sorted(directory.glob("seg_*.m4s"), key=lambda p: int(p.stem[4:]))
    return [directory / "init.mp4", *fmp4]


def concat_segments(ffmpeg: str, segments: list[Path], out: Path) -> Path:
    """Join TS segments into one file (stream copy) for probing/decoding."""
    listing = out.with_suffix(".txt")
    listing.write_text("".join(f"file '{p}'\n" for p in segments))
    subprocess.run(
        [
            ffmpeg,
            "-v",
            "error",
            "-y",
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
            str(listing),
            "-c",
            "copy",
            str(out),
        ],
        check=True,
        timeout=60,
    )
    return out


def decode_audio(ffmpeg: str, media: Path, rate: int = 16000) -> np.ndarray:
    out = subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(media), "-vn", "-ac", "1", "-ar", str(rate), "-f", "f32le", "-"],
        capture_output=True,
        check=True,
        timeout=60,
    )
    return np.frombuffer(out.stdout, np.float32)


def decode_gray_frames(ffmpeg: str, media: Path, size: int) -> np.ndarray:
    out = subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(media), "-an", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
        timeout=60,
    )
    return np.frombuffer(out.stdout, np.uint8).reshape(-1, size, size, 3)


class Decoded:
    """A session's HLS output decoded as a viewer would (PyAV), with presentation times."""

    def __init__(self, media: Path, with_frames: bool = False) -> None:
        import av

        from hls.barcode import read_barcode

        self.video_times: list[float] = []
        self.levels: list[float] = []
        self.indices: list[int | None] = []
        chunks: list[np.ndarray] = []
        self.audio_start: float | None = None
        self.rate = 0
        with av.open(str(media)) as c:
            for frame in c.decode(c.streams.video[0], c.streams.audio[0]):
                if isinstance(frame, av.VideoFrame):
                    self.video_times.append(float(frame.time))
                    if with_frames:
                        img = frame.to_ndarray(format="rgb24")
                        cell = img.shape[1] // 32
                        self.levels.append(float(img[cell * 2 :].mean()))
                        self.indices.append(read_barcode(img))
                else:
                    if self.audio_start is None:
                        self.audio_start, self.rate = float(frame.time), frame.sample_rate
                    chunks.append(frame.to_ndarray().reshape(len(frame.layout.channels), -1)[0])
        order = np.argsort(self.video_times)
        self.video_times = list(np.asarray(self.video_times)[order])
        if with_frames:
            self.levels = list(np.asarray(self.levels)[order])
            self.indices = [self.indices[i] for i in order]
        self.audio = np.concatenate(chunks).astype(np.float32)

    @property
    def video_start(self) -> float:
        return self.video_times[0]

    @property
    def frames(self) -> int:
        return len(self.video_times)

    def audio_at(self, rate: int) -> np.ndarray:
        """Audio from the first video frame's time on (AAC priming removed by its timestamps)."""
        import soxr

        skip = round((self.video_start - (self.audio_start or 0.0)) * self.rate)
        return soxr.resample(self.audio[max(skip, 0) :], self.rate, rate).astype(np.float32)


def find_in(reference: np.ndarray, signal: np.ndarray, rate: int) -> tuple[float, float]:
    """(offset seconds of ``reference`` inside ``signal``, normalised correlation peak)."""
    from scipy.signal import correlate

    cc = correlate(signal.astype(np.float64), reference.astype(np.float64), mode="valid", method="fft")
    lag = int(np.argmax(np.abs(cc)))
    window = signal[lag : lag + len(reference)].astype(np.float64)
    norm = np.sqrt(np.sum(reference.astype(np.float64) ** 2) * np.sum(window**2)) or 1.0
    return lag / rate, float(abs(cc[lag]) / norm)


def session_media(directory: Path, out: Path) -> Path:
    """Every segment of a finished session joined into one file (byte concatenation is valid
    MPEG-TS, and init + fMP4 segments a valid fragmented MP4; ffmpeg probes the content)."""
    with open(out, "wb") as f:
        for seg in all_segments(directory):
            f.write(seg.read_bytes())
    return out
