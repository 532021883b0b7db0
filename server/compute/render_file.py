"""Offline rendering: one portrait + one audio file → an MP4 (what ``facestream render`` runs).

The same engine stream as a live session, pushed as fast as the machine allows: the whole audio
is the timeline (no idle lead-in), padded with silence to a whole number of frames, so the
video lasts exactly ceil(audio × 25) frames and the audio track the same (audio duration ± 1 frame).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from hls.mp4 import Mp4Writer
from hls.ticks import samples_for_tick
from models.engines.base import Engine
from models.errors import InvalidAudioError
from models.types import ENGINE_SAMPLE_RATE, FPS, SAMPLES_PER_FRAME, AudioSlice, EngineParams
from server.compute.avatar import prepare_avatar

PUSH_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class RenderResult:
    path: Path
    frames: int
    audio_seconds: float
    render_seconds: float

    @property
    def speed(self) -> float:
        """× real time."""
        return self.frames / FPS / self.render_seconds if self.render_seconds > 0 else math.inf


def decode_audio_file(path: Path) -> tuple[np.ndarray, int]:
    """Any audio file → mono float32 + its rate (soundfile first, PyAV for other containers)."""
    import soundfile as sf

    try:
        pcm, rate = sf.read(str(path), dtype="float32", always_2d=True)
        pcm = pcm.mean(axis=1, dtype=np.float32)
    except Exception:
        try:
            import av

            with av.open(str(path)) as c:
                if not c.streams.audio:
                    raise InvalidAudioError(f"{path} has no audio stream") from None
                rate = int(c.streams.audio[0].rate)
                res = av.AudioResampler(format="flt", layout="mono", rate=rate)
                parts = [f.to_ndarray().reshape(-1) for fr in c.decode(audio=0) for f in res.resample(fr)]
            pcm = np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)
        except InvalidAudioError:
            raise
        except Exception as e:
            raise InvalidAudioError(f"cannot decode {path}: {e}") from None
    if pcm.size == 0 or not np.isfinite(pcm).all():
        raise InvalidAudioError(f"{path}: no usable samples")
    return np.clip(pcm, -1, 1), int(rate)


def render_file(
    engine: Engine,
    image: bytes,
    audio_path: Path,
    out_path: Path,
    params: EngineParams,
    out_rate: int = 48_000,
    progress: Callable[[int, int], None] | None = None,
) -> RenderResult:
    pcm, rate = decode_audio_file(audio_path)
    started = time.perf_counter()
    avatar = prepare_avatar(engine, image, params)
    pcm16 = soxr.resample(pcm, rate, ENGINE_SAMPLE_RATE).astype(np.float32)
    pcm_out = soxr.resample(pcm, rate, out_rate).astype(np.float32)
    n_frames = max(1, math.ceil(len(pcm16) / SAMPLES_PER_FRAME))
    pcm16 = np.pad(pcm16, (0, n_frames * SAMPLES_PER_FRAME - len(pcm16)))
    out_total = n_frames * out_rate // FPS
    pcm_out = np.pad(pcm_out, (0, max(0, out_total - len(pcm_out))))[:out_total]
    audio16 = np.clip(np.round(pcm_out * 32767), -32768, 32767).astype(np.int16)
    width, height = avatar.size
    stream = engine.open_stream(avatar, params)
    writer = Mp4Writer(out_path, width, height, FPS, out_rate)
    written = 0
    try:
        step = round(PUSH_SECONDS * ENGINE_SAMPLE_RATE)
        for i in range(0, len(pcm16) + 1, step):
            chunk = pcm16[i : i + step]
            frames = stream.push_audio(chunk) if len(chunk) else []
            if i + step >= len(pcm16):
                frames = frames + stream.flush()
            for f in frames:
                if f.index >= n_frames:
                    continue
                a = f.index * out_rate // FPS
                slice_ = audio16[a : a + samples_for_tick(f.index, out_rate, FPS)]
                writer.write(f, AudioSlice(f.index, slice_, out_rate))
                written += 1
            if progress is not None:
                progress(written, n_frames)
            if i + step >= len(pcm16):
                break
        if written != n_frames:
            raise RuntimeError(f"engine returned {written} frames for {n_frames} frames of audio")
        writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        stream.close()
    return RenderResult(Path(out_path), written, len(pcm) / rate, time.perf_counter() - started)
