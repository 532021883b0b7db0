"""Shared helpers for the server tests (no tests here): a probe engine, a live uvicorn, HLS readers.

ProbeEngine is a real, deterministic Engine implementation for testing the *session machinery*
(clock, scheduling, A/V lock) independently of the CPU engine's looks: frame k is painted with
the barcode of k and a brightness proportional to the loudness of timeline audio in frame k, so a
decoded HLS stream tells exactly which frame was shown and whether speech drove it.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import uvicorn

from models.types import SAMPLES_PER_FRAME, Avatar, EngineParams, VideoFrame
from server.barcode import stamp_barcode


class ProbeStream:
    def __init__(self, size: int, lookahead: int, cost_s: float) -> None:
        self.lookahead_frames = lookahead
        self._size = size
        self._cost = cost_s
        self._audio = np.zeros(0, np.float32)
        self._base = 0  # timeline sample of _audio[0]
        self._next = 0
        self.pushed = 0
        self.contexts: list[int] = []

    def push_audio(self, pcm: np.ndarray, context: np.ndarray | None = None) -> list[VideoFrame]:
        if context is not None:
            self.contexts.append(len(context))
        self._audio = np.concatenate([self._audio, pcm.astype(np.float32)])
        self.pushed += len(pcm)
        out = []
        while (self._next + 1 + self.lookahead_frames) * SAMPLES_PER_FRAME <= self.pushed:
            a = self._next * SAMPLES_PER_FRAME - self._base
            seg = self._audio[a : a + SAMPLES_PER_FRAME]
            rms = float(np.sqrt(np.mean(seg.astype(np.float64) ** 2))) if len(seg) else 0.0
            level = int(min(235, 16 + rms * 2000))
            img = np.full((self._size, self._size, 3), level, np.uint8)
            out.append(VideoFrame(self._next, stamp_barcode(img, self._next), speech=rms > 0.01))
            self._next += 1
        drop = self._next * SAMPLES_PER_FRAME - self._base
        self._audio, self._base = self._audio[drop:], self._base + drop
        if self._cost:
            time.sleep(self._cost * len(out))
        return out

    def flush(self) -> list[VideoFrame]:
        return []

    def close(self) -> None:
        pass


class ProbeEngine:
    """Frame k = barcode(k) + grey level ∝ RMS of timeline audio in frame k."""

    name = "probe"

    def __init__(self, size: int = 128, lookahead: int = 3, cost_s: float = 0.0) -> None:
        self.size, self.lookahead, self.cost_s = size, lookahead, cost_s
        self.streams: list[ProbeStream] = []

    def prepare(self, image: np.ndarray, params: EngineParams) -> Avatar:
        img = np.full((self.size, self.size, 3), 16, np.uint8)
        return Avatar(
            img, np.zeros((478, 3), np.float32), (0, 0, self.size, self.size), (self.size, self.size)
        )

    def open_stream(self, avatar: Avatar, params: EngineParams) -> ProbeStream:
        s = ProbeStream(self.size, self.lookahead, self.cost_s)
        self.streams.append(s)
        return s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def live_server(app) -> Iterator[str]:
    """Run ``app`` on a real uvicorn on loopback in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(60)


def wav_bytes(pcm: np.ndarray, rate: int) -> bytes:
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, pcm, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def init_session(client: httpx.Client, image: bytes, **fields) -> dict:
    r = client.post(
        "/api/audio-driven/chunked/init",
        files={"image": ("face.jpg", image, "image/jpeg")},
        data={k: str(v) for k, v in fields.items()},
    )
    assert r.status_code == 200, r.text
    return r.json()


def feed(client: httpx.Client, sid: str, data: bytes, final: bool = False) -> httpx.Response:
    return client.post(
        "/api/audio-driven/chunked/feed",
        data={"session_id": sid, "is_final_chunk": "true" if final else "false"},
        files={"audio_chunk": ("chunk.bin", data, "application/octet-stream")},
    )


def wait_status(client: httpx.Client, sid: str, want: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        st = client.get(f"/api/audio-driven/chunked/status/{sid}").json()
        if st["status"] == want or time.monotonic() > deadline:
            return st
        time.sleep(0.1)


def session_dir(storage: Path, sid: str) -> Path:
    return storage / sid


def all_segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("seg_*.ts"))


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

        from server.barcode import read_barcode

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
    """Every segment of a finished session joined into one TS (byte concatenation is valid MPEG-TS)."""
    with open(out, "wb") as f:
        for seg in all_segments(directory):
            f.write(seg.read_bytes())
    return out
