"""MP4 outputs against a real ffmpeg: the tick-fed writer and the HLS→MP4 remux (checked with ffprobe
and by decoding frames and audio back)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import resample_poly

from hls.errors import SinkFailedError
from hls.mp4 import Mp4Writer, remux_hls_to_mp4
from hls.sink import HlsSink
from hls.testpattern import audio_offset_seconds, decode_media, noise_audio, ticks

W, H, FPS = 256, 128, 25
FRAME_S = 1 / FPS


def _streams(info: dict) -> dict[str, dict]:
    return {s["codec_type"]: s for s in info["streams"]}


def _check_locked(path: Path, audio: np.ndarray, n: int, probe) -> None:
    info = probe(path)
    streams = _streams(info)
    assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "aac"
    assert int(streams["video"]["nb_frames"]) == n
    assert streams["video"]["pix_fmt"] == "yuv420p"
    assert abs(float(streams["video"]["duration"]) - float(streams["audio"]["duration"])) < FRAME_S
    media = decode_media(path)
    assert media.frame_indices.tolist() == list(range(n))
    assert abs(media.audio_end - media.video_end) < FRAME_S
    assert media.sample_rate == 48000
    lag = audio_offset_seconds(audio[:48000].astype(np.float32), media.audio, 48000)
    assert abs(media.audio_start + lag - media.frame_times[0]) < 0.003


def test_mp4_writer_encodes_every_tick_with_locked_audio(tmp_path: Path, probe) -> None:
    n = 3 * FPS
    audio = noise_audio(3.0, 48000, seed=7)
    path = tmp_path / "out.mp4"
    with Mp4Writer(path, W, H) as writer:
        for tick in ticks(n, W, H, audio, 48000):
            writer.write(*tick)
    assert writer.frames_written == n
    data = path.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat"), "faststart: moov before mdat"
    _check_locked(path, audio, n, probe)


@pytest.mark.parametrize("rate", [16000, 44100])
def test_mp4_writer_resamples_other_input_rates_to_48k_without_shifting(
    tmp_path: Path, probe, rate: int
) -> None:
    n = 2 * FPS
    audio = noise_audio(2.0, rate, seed=8)
    with Mp4Writer(tmp_path / "o.mp4", W, H, sample_rate=rate) as writer:
        for tick in ticks(n, W, H, audio, rate):
            writer.write(*tick)
    info = probe(tmp_path / "o.mp4")
    assert _streams(info)["audio"]["sample_rate"] == "48000"
    media = decode_media(tmp_path / "o.mp4")
    assert media.frame_indices.tolist() == list(range(n))
    assert abs(media.audio_end - media.video_end) < FRAME_S
    reference = resample_poly(audio.astype(np.float64), 48000, rate)[:48000]
    lag = audio_offset_seconds(reference, media.audio, 48000)
    assert abs(media.audio_start + lag - media.frame_times[0]) < 0.003


def test_mp4_writer_abort_and_errors_remove_the_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "x.mp4"
    audio = noise_audio(1.0, 48000)
    with pytest.raises(RuntimeError, match="boom"), Mp4Writer(path, W, H) as writer:
        for tick in ticks(5, W, H, audio, 48000):
            writer.write(*tick)
        raise RuntimeError("boom")
    assert not path.exists()
    assert not [t for t in threading.enumerate() if "x.mp4" in t.name]


def test_remux_of_live_segments_keeps_every_frame_and_the_lock(tmp_path: Path, probe) -> None:
    n = 4 * FPS + 7  # a short last segment
    audio = noise_audio(n * FRAME_S, 48000, seed=9)
    live = tmp_path / "live"
    live.mkdir()
    with HlsSink(live, W, H, list_size=2, write_timeout=10.0) as sink:
        for tick in ticks(n, W, H, audio, 48000):
            sink.write(*tick)
        sink.end()
    out = remux_hls_to_mp4(sink.segment_paths, tmp_path / "recording.mp4")
    assert len(sink.segment_paths) == 5 and out.exists()
    assert not list(tmp_path.glob(".*part*"))
    _check_locked(out, audio, n, probe)


def test_remux_failures_are_typed(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        remux_hls_to_mp4([], tmp_path / "r.mp4")
    junk = tmp_path / "junk.ts"
    junk.write_bytes(b"not a transport stream" * 100)
    with pytest.raises(SinkFailedError, match="remux"):
        remux_hls_to_mp4([junk], tmp_path / "r.mp4")
    assert not (tmp_path / "r.mp4").exists()
