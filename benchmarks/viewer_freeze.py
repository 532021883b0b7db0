"""What a viewer sees: decode a session's stream and count speech frames whose picture froze.

Why decode instead of asking the server: the server's own counters (stale ticks) say what the
clock did, but the claim to check is what reaches the viewer after x264, segmenting and remuxing.
A frame is *frozen* when its decoded picture repeats the previous one (the clock re-sent a stale
frame, which x264 codes as skip blocks: the decoded picture is unchanged); a *speech* frame is one
whose 40 ms of decoded audio is voiced. A talking mouth changes some 8×8 block of the picture every
frame by several levels, so a speech frame with no block changed that much is a freeze, not a
still mouth.

Pure functions on decoded arrays plus one ffmpeg decode; used by benchmarks/server_capacity.py.
"""

from __future__ import annotations

import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from hls.ffmpeg_tools import ffmpeg_exe

FPS = 25
AUDIO_RATE = 16_000
SPEECH_RMS = 0.01
"""A frame's audio is speech above this RMS (-40 dBFS); the sample speech's pauses fall below."""
BLOCK = 8
FROZEN_BLOCK_DIFF = 3.0
"""A picture repeats the previous one when no 8×8 block's mean luma moved by 3 levels or more.
Calibrated on decoded sessions (sample face and voice, superfast CRF 23): x264 keeps refining a
repeated input picture (a re-sent stale frame decodes 1–3 levels off its predecessor), so at this
threshold the repeats match the server's own stale-tick count (301 vs 298 of 413 ticks at 6
overloaded sessions), while no speech frame of an unloaded session falls below it (0 of 141; the
smallest mouth movements move some block by 5+ levels)."""


@dataclass(frozen=True, slots=True)
class FreezeStats:
    frames: int
    speech_frames: int
    frozen_speech_frames: int
    longest_frozen_speech_run: int  # consecutive frozen speech frames (× 40 ms)
    distinct_pictures_per_s: float  # effective frame rate over the whole stream

    @property
    def frozen_share(self) -> float:
        return self.frozen_speech_frames / self.speech_frames if self.speech_frames else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self) | {"frozen_share": round(self.frozen_share, 4)}


def decode(path: Path, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(frames, audio): luma pictures (n, h, w) uint8 and mono float32 audio at 16 kHz."""
    exe = ffmpeg_exe()
    video = subprocess.run(
        [exe, "-v", "error", "-i", str(path), "-map", "0:v:0", "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        capture_output=True,
        check=True,
    ).stdout
    audio = subprocess.run(
        [
            exe,
            "-v",
            "error",
            "-i",
            str(path),
            "-map",
            "0:a:0",
            "-f",
            "s16le",
            "-ac",
            "1",
            "-ar",
            "16000",
            "-",
        ],
        capture_output=True,
        check=True,
    ).stdout
    frames = np.frombuffer(video, np.uint8)
    frames = frames[: len(frames) // (width * height) * width * height].reshape(-1, height, width)
    return frames, np.frombuffer(audio, "<i2").astype(np.float32) / 32768.0


def block_change(a: np.ndarray, b: np.ndarray) -> float:
    """Largest change of an 8×8 block's mean luma between two pictures."""
    h, w = a.shape
    small = (w // BLOCK, h // BLOCK)
    ma = cv2.resize(a.astype(np.float32), small, interpolation=cv2.INTER_AREA)
    mb = cv2.resize(b.astype(np.float32), small, interpolation=cv2.INTER_AREA)
    return float(np.abs(ma - mb).max())


def speech_mask(audio: np.ndarray, frames: int) -> np.ndarray:
    spf = AUDIO_RATE // FPS
    padded = np.zeros(frames * spf, np.float32)
    n = min(len(audio), len(padded))
    padded[:n] = audio[:n]
    rms = np.sqrt((padded.reshape(frames, spf).astype(np.float64) ** 2).mean(axis=1))
    return rms > SPEECH_RMS


def freeze_stats(frames: np.ndarray, audio: np.ndarray) -> FreezeStats:
    n = len(frames)
    speech = speech_mask(audio, n)
    repeated = np.zeros(n, bool)
    for i in range(1, n):
        repeated[i] = block_change(frames[i], frames[i - 1]) < FROZEN_BLOCK_DIFF
    frozen = repeated & speech
    longest = run = 0
    for f in frozen:
        run = run + 1 if f else 0
        longest = max(longest, run)
    distinct = (n - int(repeated.sum())) / (n / FPS) if n else 0.0
    return FreezeStats(n, int(speech.sum()), int(frozen.sum()), longest, round(distinct, 2))
