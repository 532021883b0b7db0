"""The loop side of LL-HLS (``server.sinks.llhls_live.LlHlsLive``) and the on-disk segment archive, with
real ffmpeg CMAF fragments fed from a thread as the packager would."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hls.llhls.archive import SegmentArchive
from hls.llhls.fragments import Fmp4Splitter, Fragment, InitSegment
from hls.llhls.sink import LlHlsSink
from hls.llhls.timeline import LlHlsTimeline, Readiness
from hls.mp4 import remux_hls_to_mp4
from hls.testpattern import decode_media, noise_audio, ticks
from server.settings import Settings
from server.sinks.llhls_live import LlHlsLive


@pytest.fixture(scope="module")
def cmaf(ffmpeg: str) -> tuple[InitSegment, list[Fragment]]:
    cmd = [
        ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=s=128x64:r=25",
        "-f", "lavfi", "-i", "sine=f=440:r=48000", "-t", "2", "-c:v", "libx264", "-preset", "ultrafast",
        "-g", "25", "-keyint_min", "25", "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-c:a", "aac",
        "-ac", "1", "-f", "mp4", "-movflags", "+frag_keyframe+empty_moov+default_base_moof+cmaf+delay_moov",
        "-frag_duration", "200000", "pipe:1",
    ]  # fmt: skip
    items = Fmp4Splitter().feed(subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout)
    init, frags = items[0], items[1:]
    assert isinstance(init, InitSegment) and len(frags) >= 10
    return init, [f for f in frags if isinstance(f, Fragment)]


def _timeline(init: InitSegment) -> LlHlsTimeline:
    timeline = LlHlsTimeline(datetime(2026, 1, 1, tzinfo=UTC), 0.2, 1.0, window_segments=3)
    timeline.set_init(init)
    return timeline


async def test_waiters_wake_when_the_part_is_added_from_another_thread(cmaf) -> None:
    init, frags = cmaf
    timeline = _timeline(init)
    live = LlHlsLive(timeline)
    timeline.add_fragment(frags[0])
    added_at: list[float] = []

    def packager() -> None:
        time.sleep(0.15)
        timeline.add_fragment(frags[1])
        added_at.append(time.monotonic())

    assert timeline.readiness(1, 1) is Readiness.WAIT
    thread = threading.Thread(target=packager)
    thread.start()
    results = await asyncio.gather(*(live.wait(1, 1, timeout=2.0) for _ in range(20)))
    woke = time.monotonic()
    thread.join()
    assert results == [Readiness.READY] * 20
    assert woke - added_at[0] < 0.1, "waiters were not woken promptly by the packager's change"
    assert threading.active_count() < 20  # no thread per waiter
    live.close()


async def test_wait_times_out_and_rejects_far_future(cmaf) -> None:
    init, frags = cmaf
    live = LlHlsLive(_timeline(init))
    live.timeline.add_fragment(frags[0])
    t0 = time.monotonic()
    assert await live.wait(1, 3, timeout=0.2) is Readiness.WAIT
    assert 0.18 < time.monotonic() - t0 < 1.0
    assert await live.wait(4, None, timeout=5.0) is Readiness.BAD_REQUEST  # beyond last + 2


async def test_playlist_is_rendered_once_per_change(cmaf) -> None:
    init, frags = cmaf
    live = LlHlsLive(_timeline(init))
    live.timeline.add_fragment(frags[0])
    first = {live.playlist() for _ in range(50)}
    assert len(first) == 1 and live.renders == 1
    live.timeline.add_fragment(frags[1])
    assert live.playlist() != next(iter(first)) and live.renders == 2


def test_archive_keeps_init_and_the_newest_segments(tmp_path: Path, cmaf) -> None:
    init, frags = cmaf
    archive = SegmentArchive(tmp_path, keep=2)
    assert archive.paths() == []
    archive.set_init(init.data)
    assert archive.write_playlist() is None
    for msn in range(1, 5):
        archive.add_segment(msn, frags[msn].data, 0.2)
    assert [p.name for p in archive.paths()] == ["init.mp4", "seg_3.m4s", "seg_4.m4s"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["init.mp4", "seg_3.m4s", "seg_4.m4s"]
    assert (tmp_path / "seg_4.m4s").read_bytes() == frags[4].data
    playlist = archive.write_playlist()
    assert playlist is not None
    text = playlist.read_text()
    assert "#EXT-X-MEDIA-SEQUENCE:3" in text and '#EXT-X-MAP:URI="init.mp4"' in text
    assert text.splitlines()[-3:] == ["#EXTINF:0.200,", "seg_4.m4s", "#EXT-X-ENDLIST"]
    with pytest.raises(ValueError):
        SegmentArchive(tmp_path, keep=0)


def test_settings_validate_the_mode_and_part_length(tmp_path: Path) -> None:
    assert Settings(storage_dir=tmp_path, hls_mode="LL").hls_mode == "ll"
    with pytest.raises(ValueError):
        Settings(storage_dir=tmp_path, hls_mode="dash")
    for part in (0.03, 0.3):  # not whole frames / not dividing the 1 s segment
        with pytest.raises(ValueError):
            Settings(storage_dir=tmp_path, llhls_part_seconds=part)


def test_sink_archives_segments_for_the_recording_and_closes_a_playlist(tmp_path: Path) -> None:
    out = tmp_path / "session"
    out.mkdir()
    n, w, h = 3 * 25 + 10, 128, 64  # the last segment is short (0.4 s)
    with LlHlsSink("rec", w, h, write_timeout=10.0, out_dir=out) as sink:
        for tick in ticks(n, w, h, noise_audio(n / 25, 48000, seed=3), 48000):
            sink.write(*tick)
        sink.end()
    assert [p.name for p in sink.segment_paths] == ["init.mp4", *(f"seg_{m}.m4s" for m in (1, 2, 3, 4))]
    recording = remux_hls_to_mp4(sink.segment_paths, tmp_path / "recording.mp4")
    assert decode_media(recording).frame_indices.tolist() == list(range(n))
    playlist = (out / "playlist.m3u8").read_text()
    assert playlist.rstrip().endswith("#EXT-X-ENDLIST") and "#EXTINF:0.400," in playlist
    assert decode_media(out / "playlist.m3u8").frame_indices.tolist() == list(range(n))
