"""Decoding uploaded chunks: every accepted container from real ffmpeg encodes, raw PCM, and refusals."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import correlate

from models.errors import InvalidAudioError
from server.errors import PayloadTooLargeError
from server.session.audio.decode import decode_audio_chunk, sniff


@pytest.fixture(scope="module")
def speech(sample_speech_path: Path) -> tuple[np.ndarray, int]:
    pcm, rate = sf.read(sample_speech_path, dtype="float32")
    return pcm[: rate * 3], rate


@pytest.fixture(scope="module")
def encoded(ffmpeg: str, speech, tmp_path_factory) -> dict[str, bytes]:
    """The first 3 s of the sample speech as WAV/FLAC/OGG/MP3/M4A at 24 kHz, made by ffmpeg."""
    pcm, rate = speech
    d = tmp_path_factory.mktemp("enc")
    src = d / "src.wav"
    sf.write(src, pcm, rate)
    out = {}
    for ext, args in {
        "wav": [],
        "flac": [],
        "ogg": ["-c:a", "libvorbis"] if _has_encoder(ffmpeg, "libvorbis") else ["-c:a", "flac"],
        "mp3": ["-c:a", "libmp3lame", "-b:a", "64k"],
        "m4a": ["-c:a", "aac", "-b:a", "64k"],
    }.items():
        path = d / f"s.{ext}"
        subprocess.run(
            [ffmpeg, "-v", "error", "-y", "-i", str(src), "-ar", "24000", *args, str(path)],
            check=True,
            timeout=60,
        )
        out[ext] = path.read_bytes()
    return out


def _has_encoder(ffmpeg: str, name: str) -> bool:
    r = subprocess.run([ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=30)
    return name in r.stdout


def _matches(decoded: np.ndarray, rate: int, reference: np.ndarray, ref_rate: int) -> float:
    """Peak normalised cross-correlation of the two signals at 16 kHz."""
    import soxr

    a = soxr.resample(decoded, rate, 16000)
    b = soxr.resample(reference, ref_rate, 16000)
    n = min(len(a), len(b))
    cc = correlate(a[:n], b[:n], mode="full", method="fft")
    return float(np.max(np.abs(cc)) / np.sqrt(np.sum(a[:n] ** 2) * np.sum(b[:n] ** 2)))


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3", "m4a"])
def test_containers_decode_to_the_same_speech(ext: str, encoded, speech) -> None:
    pcm, rate = speech
    d = decode_audio_chunk(encoded[ext], raw_sample_rate=16000, max_seconds=10)
    assert d.sample_rate == 24000 and d.pcm.dtype == np.float32
    assert abs(d.duration - 3.0) < 0.06, d.duration  # encoder padding at most a few frames
    assert _matches(d.pcm, d.sample_rate, pcm, rate) > 0.9
    assert d.container != "raw"


def test_raw_pcm_s16le_at_the_session_rate(speech) -> None:
    pcm, rate = speech
    import soxr

    pcm24 = soxr.resample(pcm, rate, 24000)
    raw = (np.clip(pcm24, -1, 1) * 32767).astype("<i2").tobytes()
    assert sniff(raw) is None
    d = decode_audio_chunk(raw, raw_sample_rate=24000, max_seconds=10)
    assert d.container == "raw" and d.sample_rate == 24000 and len(d.pcm) == len(pcm24)
    assert np.max(np.abs(d.pcm - pcm24)) < 1e-3


def test_stereo_is_downmixed() -> None:
    t = np.arange(8000) / 8000
    left, right = np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t) * 0.5
    buf = io.BytesIO()
    sf.write(buf, np.stack([left, right], 1).astype(np.float32), 8000, format="WAV")
    d = decode_audio_chunk(buf.getvalue(), 24000, 10)
    assert np.allclose(d.pcm, (left + right) / 2, atol=1e-3)


@pytest.mark.parametrize(
    "data, match",
    [
        (b"", "empty"),
        (b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk", "header|decode"),
        (b"fLaC" + bytes(100), "header|decode"),
        (b"OggS" + bytes(200), "header|decode"),
        (b"\x01\x02\x03", "even"),
    ],
)
def test_corrupt_chunks_are_invalid_audio(data: bytes, match: str) -> None:
    with pytest.raises(InvalidAudioError, match=match):
        decode_audio_chunk(data, 24000, 10)


def test_nan_samples_are_refused() -> None:
    pcm = np.zeros(1000, np.float32)
    pcm[10] = np.nan
    buf = io.BytesIO()
    sf.write(buf, pcm, 16000, format="WAV", subtype="FLOAT")
    with pytest.raises(InvalidAudioError, match="NaN"):
        decode_audio_chunk(buf.getvalue(), 24000, 10)


def test_header_duration_is_checked_before_decoding(ffmpeg: str, tmp_path: Path) -> None:
    """A small FLAC that expands to 10 minutes of silence is refused from its header."""
    path = tmp_path / "long.flac"
    subprocess.run(
        [ffmpeg, "-v", "error", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "600", str(path)],
        check=True,
        timeout=60,
    )
    assert path.stat().st_size < 200_000
    with pytest.raises(PayloadTooLargeError, match="600"):
        decode_audio_chunk(path.read_bytes(), 24000, max_seconds=60)


def test_raw_pcm_longer_than_the_limit_is_too_large() -> None:
    raw = np.zeros(24000 * 3, "<i2").tobytes()
    with pytest.raises(PayloadTooLargeError):
        decode_audio_chunk(raw, 24000, max_seconds=2)
