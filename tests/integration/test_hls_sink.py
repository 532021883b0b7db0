"""The live HLS sink against a real ffmpeg: timing, playlist, A/V lock, frame round trip, failures.

Outputs are re-measured as a viewer would: segments are decoded with PyAV (the bundled static
ffprobe crashes on MPEG-TS here, see test_hls_mp4 for ffprobe on the remuxed MP4), frame indices
are read from barcodes in the decoded pixels and audio is located by cross-correlation.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from hls.errors import SinkClosedError, SinkFailedError, SinkStalledError
from hls.feeder import ENCODER_NICENESS, FfmpegFeeder
from hls.playlist import read_segments
from hls.sink import HlsSink, ProgressiveHLSGenerator
from hls.testpattern import audio_offset_seconds, decode_media, noise_audio, ticks
from hls.ticks import TickValidator

W, H, RATE, FPS = 256, 128, 48000, 25
FRAME_S = 1 / FPS


def _concat(paths: list[Path], out: Path) -> Path:
    with open(out, "wb") as f:
        for p in paths:
            f.write(p.read_bytes())
    return out


def _threads_of(sink_dir: Path) -> list[str]:
    return [t.name for t in threading.enumerate() if f"[{sink_dir.name}]" in t.name]


def test_first_segment_within_1_5_s_at_real_time_and_playlist_tags(tmp_path: Path) -> None:
    out = tmp_path / "live"
    out.mkdir()
    audio = noise_audio(3.0, RATE, seed=1)
    sink = HlsSink(out, W, H).start()
    try:
        t0 = time.monotonic()
        first_at = None
        for k, (frame, sl) in enumerate(ticks(60, W, H, audio, RATE)):
            sink.write(frame, sl)
            time.sleep(max(0.0, t0 + (k + 1) * FRAME_S - time.monotonic()))
            if first_at is None and read_segments(sink.playlist_path):
                first_at = time.monotonic() - t0
        assert first_at is not None and first_at < 1.5, f"first segment after {first_at} s"
        text = sink.playlist_path.read_text()
        tags = ("#EXTM3U", "#EXT-X-TARGETDURATION:1", "#EXT-X-PROGRAM-DATE-TIME:", "#EXT-X-INDEPENDENT-")
        assert all(tag in text for tag in tags), text
        assert "#EXT-X-ENDLIST" not in text
        published = sink.end()
    finally:
        sink.close()
    text = sink.playlist_path.read_text()
    assert text.rstrip().endswith("#EXT-X-ENDLIST") and text.count("#EXT-X-ENDLIST") == 1
    assert [p.segment.uri for p in published] == ["seg_00001.ts", "seg_00002.ts", "seg_00003.ts"]
    assert sum(p.segment.duration for p in published) == pytest.approx(60 * FRAME_S, abs=1e-3)
    assert not list(out.glob("*.tmp")) and sink.returncode == 0 and not _threads_of(out)
    m3u8 = pytest.importorskip("m3u8", reason="m3u8 (dev dependency) cross-checks the playlist syntax")
    parsed = m3u8.loads(text)
    assert parsed.is_endlist and parsed.is_independent_segments and parsed.target_duration == 1
    assert [s.uri for s in parsed.segments] == ["seg_00001.ts", "seg_00002.ts", "seg_00003.ts"]
    assert all(s.program_date_time is not None for s in parsed.segments)


def test_30_s_fed_fast_keeps_frames_and_audio_locked(tmp_path: Path) -> None:
    n = 30 * FPS
    audio = noise_audio(n * FRAME_S, RATE, seed=2)
    with HlsSink(tmp_path, W, H, list_size=4, write_timeout=10.0) as sink:
        for frame, sl in ticks(n, W, H, audio, RATE):
            sink.write(frame, sl)
        published = sink.end()
    # the live window is bounded but every segment was seen and kept on disk for the recording
    assert len(read_segments(sink.playlist_path)) == 4
    assert [p.segment.sequence for p in published] == list(range(1, 31))
    assert all(p.path.exists() for p in published) and sink.frames_written == n

    media = decode_media(_concat([p.path for p in published], tmp_path / "all.ts"))
    assert media.frame_indices.tolist() == list(range(n)), "every frame k decodes as frame k, in order"
    np.testing.assert_allclose(media.frame_times - media.frame_times[0], np.arange(n) * FRAME_S, atol=1e-3)
    assert abs(media.audio_end - media.video_end) < FRAME_S
    # where does input sample 0 land on the video clock? lock means at frame 0's time
    offsets = []
    for start_s in (0.0, 14.0, 28.0):  # beginning, middle and end of the run
        i0 = int(start_s * RATE)
        ref = audio[i0 : i0 + RATE].astype(np.float32)
        lag = audio_offset_seconds(ref, media.audio, RATE)
        offsets.append(media.audio_start + lag - start_s - media.frame_times[0])
    assert max(abs(o) for o in offsets) < 0.003, f"A/V offsets {offsets} s"


def test_event_playlist_lists_everything_and_delete_mode_bounds_disk(tmp_path: Path) -> None:
    audio = noise_audio(5.0, RATE, seed=3)
    event_dir, bounded_dir = tmp_path / "event", tmp_path / "bounded"
    event_dir.mkdir()
    bounded_dir.mkdir()
    with ProgressiveHLSGenerator(event_dir, W, H, event_playlist=True, write_timeout=10.0) as event:
        with HlsSink(bounded_dir, W, H, list_size=2, delete_old_segments=True, write_timeout=10.0) as bounded:
            for frame, sl in ticks(5 * FPS, W, H, audio, RATE):
                event.write(frame, sl)
                bounded.write(frame, sl)
            bounded.end()
        event.end()
    text = event.playlist_path.read_text()
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in text and text.rstrip().endswith("#EXT-X-ENDLIST")
    assert len(read_segments(event.playlist_path)) == 5
    on_disk = sorted(p.name for p in bounded_dir.glob("seg_*.ts"))
    assert len(on_disk) <= 4 and "seg_00005.ts" in on_disk and "seg_00001.ts" not in on_disk
    assert [p.segment.sequence for p in bounded.segments_published] == [1, 2, 3, 4, 5]


def test_killed_ffmpeg_fails_fast_and_close_releases_everything(tmp_path: Path) -> None:
    fds_before = len(os.listdir("/proc/self/fd"))
    audio = noise_audio(2.0, RATE, seed=4)
    sink = HlsSink(tmp_path, W, H).start()
    gen = ticks(50, W, H, audio, RATE)
    for _ in range(10):
        sink.write(*next(gen))
    pid = sink.pid
    assert pid is not None and sink.alive
    os.kill(pid, signal.SIGKILL)
    t0 = time.monotonic()
    with pytest.raises(SinkFailedError, match=r"exited|broke"):
        while time.monotonic() - t0 < 2.0:
            sink.write(*next(gen))
            time.sleep(0.01)
    assert time.monotonic() - t0 < 1.0
    assert not sink.alive and sink.error is not None
    sink.close()
    sink.close()
    assert sink.returncode == -signal.SIGKILL
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # already reaped: no zombie
    assert not _threads_of(tmp_path)
    assert len(os.listdir("/proc/self/fd")) == fds_before
    with pytest.raises(SinkFailedError):
        sink.end()
    assert "#EXT-X-ENDLIST" not in (sink.playlist_path.read_text() if sink.playlist_path.exists() else "")


def test_stalled_encoder_rejects_whole_ticks_and_recovers(tmp_path: Path) -> None:
    audio = noise_audio(3.0, RATE, seed=5)
    sink = HlsSink(tmp_path, W, H, queue_ticks=3, write_timeout=0.2).start()
    try:
        gen = list(ticks(40, W, H, audio, RATE))
        for tick in gen[:5]:
            sink.write(*tick, timeout=5.0)
        assert sink.pid is not None
        os.kill(sink.pid, signal.SIGSTOP)
        written = 5
        with pytest.raises(SinkStalledError):
            for tick in gen[5:]:
                sink.write(*tick)
                written += 1
        t0 = time.monotonic()
        with pytest.raises(SinkStalledError):
            sink.write(*gen[written], timeout=0)
        assert time.monotonic() - t0 < 0.05, "timeout=0 never waits"
        os.kill(sink.pid, signal.SIGCONT)
        for tick in gen[written:]:  # the refused tick is retried, nothing was half-queued
            sink.write(*tick, timeout=5.0)
        sink.end()
    finally:
        sink.close()
    media = decode_media(_concat(sink.segment_paths, tmp_path / "all.ts"))
    assert media.frame_indices.tolist() == list(range(40))
    assert abs(media.audio_end - media.video_end) < FRAME_S


def test_bad_ticks_are_refused_without_harming_the_stream(tmp_path: Path) -> None:
    audio = noise_audio(1.0, RATE, seed=6)
    gen = list(ticks(25, W, H, audio, RATE))
    with HlsSink(tmp_path, W, H, write_timeout=10.0) as sink:
        sink.write(*gen[0])
        with pytest.raises(ValueError):
            sink.write(gen[1][0], gen[1][1].__class__(1, gen[1][1].pcm[:-1], RATE))
        with pytest.raises(ValueError):
            sink.write(*gen[2])
        for tick in gen[1:]:
            sink.write(*tick)
        sink.end()
        with pytest.raises(SinkClosedError):
            sink.write(*gen[0])
    assert sink.frames_written == 25 and sink.alive is False and sink.returncode == 0
    with pytest.raises(FileNotFoundError):
        HlsSink(tmp_path / "missing", W, H)


def test_resume_after_a_crash_continues_the_playlist_without_overwriting(tmp_path: Path) -> None:
    audio = noise_audio(6.0, RATE, seed=12)
    gen = list(ticks(150, W, H, audio, RATE))
    first = HlsSink(tmp_path, W, H, write_timeout=10.0).start()
    for tick in gen[:60]:
        first.write(*tick)
    assert first.wait_for_segments(2, timeout=5.0) and first.pid is not None
    os.kill(first.pid, signal.SIGKILL)
    first.close()
    before = {p.name: p.read_bytes() for p in tmp_path.glob("seg_*.ts")}
    assert sorted(before) == ["seg_00001.ts", "seg_00002.ts"]
    with HlsSink(tmp_path, W, H, write_timeout=10.0, resume=True) as second:
        for tick in gen[60:]:
            second.write(*tick)
        second.end()
    text = second.playlist_path.read_text()
    names = [s.uri for s in read_segments(second.playlist_path)]
    assert names == [f"seg_{i:05d}.ts" for i in range(1, 7)]
    after_crash = text.split("seg_00002.ts")[1]
    assert after_crash.lstrip().startswith("#EXT-X-DISCONTINUITY\n")
    assert all((tmp_path / name).read_bytes() == data for name, data in before.items())
    media = decode_media(_concat([tmp_path / n for n in names[2:]], tmp_path / "second.ts"))
    assert media.frame_indices.tolist() == list(range(60, 150))


def test_an_encoder_that_cannot_start_or_refuses_its_settings_fails_with_its_message(tmp_path: Path) -> None:
    fds_before = len(os.listdir("/proc/self/fd"))
    feeder = FfmpegFeeder("nope", lambda fd: [str(tmp_path / "no-ffmpeg")], TickValidator(W, H, FPS, RATE))
    with pytest.raises(SinkFailedError, match="cannot start"):
        feeder.start()
    assert len(os.listdir("/proc/self/fd")) == fds_before
    audio = noise_audio(1.0, RATE)
    sink = HlsSink(tmp_path, W, H, preset="no-such-preset").start()
    try:
        with pytest.raises(SinkFailedError, match="no-such-preset"):
            for tick in ticks(25, W, H, audio, RATE):
                sink.write(*tick)
                time.sleep(0.05)
        assert any("no-such-preset" in line for line in sink.stderr_tail)
    finally:
        sink.close()
    assert len(os.listdir("/proc/self/fd")) == fds_before


def test_end_never_hangs_on_a_frozen_encoder(tmp_path: Path) -> None:
    audio = noise_audio(2.0, RATE, seed=13)
    sink = HlsSink(tmp_path, W, H, write_timeout=5.0).start()
    gen = ticks(50, W, H, audio, RATE)
    for _ in range(5):
        sink.write(*next(gen))
    assert sink.pid is not None
    os.kill(sink.pid, signal.SIGSTOP)
    for tick in gen:  # more than the pipes can buffer, so the writer threads are blocked in write()
        try:
            sink.write(*tick, timeout=0.05)
        except SinkStalledError:
            break
    t0 = time.monotonic()
    with pytest.raises(SinkFailedError, match="did not finish"):
        sink.end(timeout=0.5)
    assert time.monotonic() - t0 < 3.0
    assert sink.returncode == -signal.SIGKILL and not _threads_of(tmp_path)
    assert "#EXT-X-ENDLIST" not in (sink.playlist_path.read_text() if sink.playlist_path.exists() else "")


def test_encoders_run_nicer_than_the_server(tmp_path: Path) -> None:
    """Deadline work (rendering) must win the run queue over encoders (hls.feeder.ENCODER_NICENESS)."""
    if shutil.which("nice") is None:
        pytest.skip("no nice binary on this system")
    sink = HlsSink(tmp_path, W, H).start()
    try:
        pid = sink.pid
        assert pid is not None
        deadline = time.monotonic() + 5
        while True:  # ``nice`` execs ffmpeg in place: same pid, the name changes once it has
            stat = Path(f"/proc/{pid}/stat").read_text()
            if "ffmpeg" in stat[stat.index("(") : stat.rindex(")")] or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        assert "ffmpeg" in stat[stat.index("(") : stat.rindex(")")], stat
        nice = int(stat.rsplit(")", 1)[1].split()[16])
        assert nice == os.getpriority(os.PRIO_PROCESS, 0) + ENCODER_NICENESS
    finally:
        sink.close()
