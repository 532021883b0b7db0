"""Decoding one uploaded audio chunk into mono float32 at its own sample rate.

Accepted: WAV/RF64/AIFF/CAF, FLAC, OGG (Vorbis/Opus) through libsndfile (soundfile); MP3, MP4/M4A,
WebM/Matroska and ADTS AAC through PyAV; anything without a recognised container signature is
raw PCM s16le mono at the session's ``audio_sample_rate`` (that is what the published API sends).

Why sniff signatures ourselves instead of letting a demuxer guess: raw PCM has no header, and a
probing demuxer can "recognise" noise as some exotic format. A strong signature must decode or
the chunk is rejected; the weak MPEG frame-sync signature falls back to raw PCM if it does not.
Durations announced by headers are checked before decoding, so a tiny FLAC claiming an hour of
silence is refused without inflating it.

Caps against cheap-to-send, costly-to-decode uploads (an 8-channel 384 kHz FLAC of silence is
~3 KB/s but 12 MB/s as float32): at most ``MAX_CHANNELS`` channels and ``MAX_RATE`` Hz; channels
are downmixed block by block *as decoded* (never a whole multi-channel array), and the decoded
duration is bounded by ``max_seconds`` whatever the header claims (streamed FLAC may claim none).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from models.errors import InvalidAudioError
from server.errors import PayloadTooLargeError

MIN_RATE, MAX_RATE = 4_000, 192_000
MAX_CHANNELS = 8
DECODE_BLOCK_FRAMES = 16_384
"""Frames read per block: the multi-channel scratch is at most 8 × 16 384 × 4 B = 512 KB."""


@dataclass(frozen=True, slots=True)
class DecodedAudio:
    pcm: np.ndarray  # (n,) float32 mono in [-1, 1]
    sample_rate: int
    container: str  # "wav", "flac", "ogg", "mp3", "pyav:<format>", "raw"

    @property
    def duration(self) -> float:
        return len(self.pcm) / self.sample_rate


def sniff(data: bytes) -> tuple[str, bool] | None:
    """(container, strong) from the leading bytes, or None for headerless data."""
    head = data[:16]
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav", True
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff", True
    if head[:4] == b"caff":
        return "caf", True
    if head[:4] == b"fLaC":
        return "flac", True
    if head[:4] == b"OggS":
        return "ogg", True
    if head[:3] == b"ID3":
        return "mp3", True
    if head[4:8] == b"ftyp":
        return "pyav", True
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "pyav", True
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:  # ADTS AAC
        return "pyav", False
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06:  # MPEG audio
        return "mp3", False
    return None


def decode_audio_chunk(data: bytes, raw_sample_rate: int, max_seconds: float) -> DecodedAudio:
    """Decode ``data`` or raise InvalidAudioError, or PayloadTooLargeError beyond ``max_seconds``."""
    if not data:
        raise InvalidAudioError("audio chunk is empty")
    kind = sniff(data)
    if kind is None:
        return _checked(_decode_raw(data, raw_sample_rate), "raw", max_seconds)
    container, strong = kind
    try:
        if container in ("pyav", "mp3"):  # PyAV: gapless MP3 like libsndfile, without its stderr noise
            pcm, rate = _decode_pyav(data, max_seconds)
            return _checked((pcm, rate), container, max_seconds)
        return _checked(_decode_soundfile(data, max_seconds), container, max_seconds)
    except PayloadTooLargeError:
        raise
    except InvalidAudioError:
        if strong:
            raise
    except Exception as e:
        if strong:
            raise InvalidAudioError(f"cannot decode {container} audio: {e}") from None
    return _checked(_decode_raw(data, raw_sample_rate), "raw", max_seconds)


def _too_long(seconds: float, max_seconds: float) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"audio chunk is {seconds:.1f} s long; the limit is {max_seconds:g} s per chunk"
    )


def _check_rate(rate: int) -> None:
    if not MIN_RATE <= rate <= MAX_RATE:
        raise InvalidAudioError(f"unsupported sample rate {rate} Hz (allowed {MIN_RATE}–{MAX_RATE})")


def _decode_raw(data: bytes, rate: int) -> tuple[np.ndarray, int]:
    if len(data) % 2:
        raise InvalidAudioError(
            "audio chunk is not a recognised container (WAV, MP3, FLAC, OGG, M4A, WebM) and, as raw "
            "PCM s16le, its byte count must be even"
        )
    _check_rate(rate)
    pcm = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    return pcm, rate


def _decode_soundfile(data: bytes, max_seconds: float) -> tuple[np.ndarray, int]:
    try:
        info = sf.info(io.BytesIO(data))
    except Exception as e:
        raise InvalidAudioError(f"cannot read audio header: {e}") from None
    _check_rate(int(info.samplerate))
    if not 1 <= info.channels <= MAX_CHANNELS:
        raise InvalidAudioError(f"unsupported channel count {info.channels} (at most {MAX_CHANNELS})")
    if info.frames > 0 and info.frames / info.samplerate > max_seconds * 1.05 + 0.1:
        raise _too_long(info.frames / info.samplerate, max_seconds)
    limit = int(max_seconds * info.samplerate) + int(0.1 * info.samplerate) + 1
    mono = np.empty(min(limit, max(info.frames, 0) or limit), np.float32)
    filled = 0
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            while filled < limit:
                want = min(DECODE_BLOCK_FRAMES, limit - filled)
                block = f.read(frames=want, dtype="float32", always_2d=True)
                if not len(block):
                    break
                if filled + len(block) > len(mono):  # the header under-announced: grow (≤ limit)
                    mono = np.resize(mono, min(limit, max(2 * len(mono), filled + len(block))))
                down = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
                mono[filled : filled + len(block)] = down
                filled += len(block)
    except Exception as e:
        raise InvalidAudioError(f"cannot decode audio: {e}") from None
    return mono[:filled], int(info.samplerate)


def _decode_pyav(data: bytes, max_seconds: float) -> tuple[np.ndarray, int]:
    import av

    try:
        with av.open(io.BytesIO(data), mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise InvalidAudioError("the uploaded media has no audio stream")
            stream = container.streams.audio[0]
            rate = int(stream.rate or stream.codec_context.sample_rate or 0)
            _check_rate(rate)
            channels = int(stream.codec_context.channels or 0)
            if not 1 <= channels <= MAX_CHANNELS:
                raise InvalidAudioError(f"unsupported channel count {channels} (at most {MAX_CHANNELS})")
            if (
                stream.duration
                and stream.time_base
                and float(stream.duration * stream.time_base) > max_seconds + 1
            ):
                raise _too_long(float(stream.duration * stream.time_base), max_seconds)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            parts: list[np.ndarray] = []
            total, limit = 0, int((max_seconds + 0.1) * rate) + 1
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    arr = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                    parts.append(arr)
                    total += len(arr)
                if total > limit:
                    break
            for out in resampler.resample(None):
                parts.append(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
    except (InvalidAudioError, PayloadTooLargeError):
        raise
    except Exception as e:
        raise InvalidAudioError(f"cannot decode audio: {e}") from None
    pcm = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return pcm, rate


def _checked(decoded: tuple[np.ndarray, int], container: str, max_seconds: float) -> DecodedAudio:
    pcm, rate = decoded
    if pcm.size == 0:
        raise InvalidAudioError("audio chunk contains no samples")
    if not np.isfinite(pcm).all():
        raise InvalidAudioError("audio chunk contains NaN or infinite samples")
    if len(pcm) / rate > max_seconds + 1e-6 + (0.1 if container != "raw" else 0.0):
        raise _too_long(len(pcm) / rate, max_seconds)
    pcm = np.clip(pcm, -1.0, 1.0).astype(np.float32, copy=False)
    return DecodedAudio(np.ascontiguousarray(pcm), rate, container)
