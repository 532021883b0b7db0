"""Stateful resampling: chunked output equals whole-signal output, counts are exact, rates may change."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr

from server.session.audio.resample import StreamResampler


@pytest.fixture(scope="module")
def speech24(sample_speech_path) -> np.ndarray:
    pcm, rate = sf.read(sample_speech_path, dtype="float32")
    return soxr.resample(pcm[: rate * 4], rate, 24000).astype(np.float32)


@pytest.mark.parametrize("out_rate", [16000, 48000])
@pytest.mark.parametrize("chunk", [240, 4801, 12000])
def test_chunked_equals_whole_without_boundary_clicks(
    speech24: np.ndarray, out_rate: int, chunk: int
) -> None:
    r = StreamResampler(out_rate)
    parts = [r.process(speech24[i : i + chunk], 24000) for i in range(0, len(speech24), chunk)]
    parts.append(r.flush())
    chunked = np.concatenate(parts)
    whole = soxr.resample(speech24, 24000, out_rate, quality="HQ")
    assert len(chunked) == len(whole) == round(len(speech24) * out_rate / 24000)
    assert np.max(np.abs(chunked - whole)) < 1e-4  # no discontinuity at any chunk boundary


def test_expected_increment_predicts_the_flushed_total() -> None:
    r = StreamResampler(16000)
    rng = np.random.default_rng(1)
    total = 0
    for n in rng.integers(1, 5000, 30):
        total += r.expected_increment(int(n), 22050)
        r.process(rng.standard_normal(int(n)).astype(np.float32) * 0.1, 22050)
    r.flush()
    assert r.emitted == r.expected == total


def test_rate_change_flushes_the_old_filter_and_keeps_counts() -> None:
    r = StreamResampler(48000)
    a = r.process(np.zeros(24000, np.float32), 24000)
    inc = r.expected_increment(44100, 44100)
    b = r.process(np.zeros(44100, np.float32), 44100)
    tail = r.flush()
    assert len(a) + len(b) + len(tail) == 48000 + 48000 and inc == 48000


def test_flush_mid_stream_then_continue() -> None:
    """A pause: the held-back tail comes out at once and the next chunk starts a fresh filter."""
    r = StreamResampler(16000)
    x = np.sin(np.arange(24000) / 10).astype(np.float32)
    first = r.process(x, 24000)
    assert len(first) < 16000  # soxr holds some output back
    tail = r.flush()
    assert len(first) + len(tail) == 16000
    again = np.concatenate([r.process(x, 24000), r.flush()])
    assert len(again) == 16000
