"""LL-HLS across an encoder restart (the RestartingSink policy, server.sinks.hls): a resumed
``LlHlsSink`` continues the same timeline behind an ``EXT-X-DISCONTINUITY``, its fragments are moved
to the end of what was published (monotonic media time, one valid fMP4 for the recording), and
``abandon`` ends the playlist when no encoder can. Real ffmpeg; synthetic fragments for the pure
discontinuity bookkeeping."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from hls.errors import SinkFailedError
from hls.llhls.fragments import Fragment, InitSegment, Track, TrackRun, shift_fragment
from hls.llhls.playlist import render_playlist, render_timeline
from hls.llhls.sink import LlHlsSink
from hls.llhls.timeline import LlHlsTimeline
from hls.testpattern import audio_offset_seconds, decode_media, noise_audio, ticks
from server.settings import Settings
from server.sinks.llhls import create_llhls_sink

ANCHOR = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
W, H = 128, 64
INIT = InitSegment(b"init", {1: Track(1, 1000, "vide"), 2: Track(2, 48000, "soun")})


def _frag(i: int, base_ms: int = 0, ms: int = 200, gop_parts: int = 5) -> Fragment:
    t = base_ms + i * ms
    video, audio = TrackRun(1, t, ms, 5, i % gop_parts == 0), TrackRun(2, t * 48, ms * 48, 9, True)
    return Fragment(i + 1, b"x", {1: video, 2: audio})


def test_a_discontinuity_closes_the_open_segment_and_is_counted_after_eviction() -> None:
    tl = LlHlsTimeline(ANCHOR, 0.2, 1.0, window_segments=2, retain_segments=0)
    tl.set_init(INIT)
    for i in range(7):  # segment 1 complete, segment 2 open with 2 parts
        tl.add_fragment(_frag(i))
    assert tl.end_time == pytest.approx(1.4) and tl.parts_published == 7
    tl.mark_discontinuity()
    assert tl.next_part == (3, 0)  # the short segment 2 is complete
    for i in range(5):  # the new encoder's fragments, already moved to the timeline's end
        tl.add_fragment(_frag(i, base_ms=1400))
    text = render_playlist(tl.snapshot())
    lines = text.splitlines()
    at = lines.index("#EXT-X-DISCONTINUITY")
    assert "seg_2.m4s" in lines[:at] and lines[at + 1].startswith("#EXT-X-PROGRAM-DATE-TIME")
    assert '#EXT-X-PART:DURATION=0.200,URI="part_3_0.m4s",INDEPENDENT=YES' in lines[at:]
    assert "#EXT-X-DISCONTINUITY-SEQUENCE" not in text
    assert tl.is_discontinuity(3) and not tl.is_discontinuity(2)
    for i in range(5, 15):  # two more segments: segment 3 (the discontinuity) leaves the window
        tl.add_fragment(_frag(i, base_ms=1400))
    text = render_playlist(tl.snapshot())
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:1\n" in text and "#EXT-X-DISCONTINUITY\n" not in text


def test_shift_fragment_rewrites_decode_times_and_sequence_in_place(ffmpeg: str) -> None:
    sink = LlHlsSink("shift", W, H, write_timeout=10.0, anchor=ANCHOR)
    with sink:
        for tick in ticks(10, W, H, noise_audio(0.4, 48000), 48000):
            sink.write(*tick)
        sink.end()
    part = sink.timeline.snapshot().segments[0].parts[1]
    from hls.llhls.fragments import Fmp4Splitter

    init_bytes = sink.timeline.resource("init.mp4") or b""
    items = Fmp4Splitter().feed(init_bytes + part.data)
    frag = items[1]
    assert isinstance(frag, Fragment)
    moved = shift_fragment(frag, {1: 12800 * 7, 2: 48000 * 7}, sequence_shift=40)
    assert len(moved.data) == len(frag.data)
    again = Fmp4Splitter().feed(init_bytes + moved.data)[1]
    assert isinstance(again, Fragment) and again.sequence == frag.sequence + 40
    for tid, run in frag.runs.items():
        assert again.runs[tid].base_time - run.base_time == (12800 if tid == 1 else 48000) * 7
        assert again.runs[tid].duration == run.duration
    assert shift_fragment(frag, {}, 0) is frag


def test_a_resumed_sink_continues_the_stream_and_the_archive_stays_one_fmp4(tmp_path: Path) -> None:
    audio = noise_audio(20.0, 48000, seed=3)
    first = LlHlsSink("a", W, H, write_timeout=10.0, anchor=ANCHOR, out_dir=tmp_path).start()
    gen = ticks(400, W, H, audio, 48000)
    for _ in range(60):  # 2.4 s: segments 1, 2 and two parts of segment 3
        first.write(*next(gen))
    for msn, part in ((1, None), (2, None), (3, 0)):
        assert first.timeline.wait_until(msn, part, timeout=10).value == "ready"
    os.kill(first.pid or 0, signal.SIGKILL)  # the encoder dies: what it had queued is lost
    failed = None
    with pytest.raises(SinkFailedError):
        for tick in gen:
            failed = tick  # not queued: the next writer gets it
            first.write(*tick)
            time.sleep(0.02)
    first.close()
    assert failed is not None
    k = failed[0].index
    published = first.timeline.end_time
    second = LlHlsSink(
        "b", W, H, write_timeout=10.0, timeline=first.timeline, archive=first.archive, resume=True
    ).start()
    for tick in ticks(50, W, H, audio, 48000, start=k):
        second.write(*tick)
    second.end()
    state = second.timeline.snapshot()
    starts = [p.start for s in state.segments for p in s.parts]
    ends = [p.start + p.duration for s in state.segments for p in s.parts]
    assert all(b == pytest.approx(a, abs=1e-3) for a, b in zip(ends, starts[1:], strict=False))  # no gap
    resumed = next(s for s in state.segments if s.discontinuity)
    assert resumed.start == pytest.approx(published, abs=1e-3)
    assert resumed.parts[0].independent  # a new encoder starts on a keyframe
    assert render_timeline(second.timeline).count("#EXT-X-DISCONTINUITY\n") == 1
    on_disk = (tmp_path / "playlist.m3u8").read_text()
    assert on_disk.count("#EXT-X-DISCONTINUITY\n") == 1 and on_disk.rstrip().endswith("#EXT-X-ENDLIST")
    whole = tmp_path / "whole.mp4"
    whole.write_bytes(b"".join(p.read_bytes() for p in second.segment_paths))
    media = decode_media(whole)
    # frames before the kill that were published, then the 50 after it, in order
    indices = media.frame_indices.tolist()
    cut = indices.index(k)
    assert indices[-50:] == list(range(k, k + 50)) and indices[:cut] == list(range(cut))
    assert all(b > a for a, b in zip(media.frame_times, media.frame_times[1:], strict=False))
    # A/V stay locked after the restart: decoded on their own (init + the resumed segments), the
    # audio of tick k is presented with frame k (the audio the dead encoder held is a gap, not a shift)
    after = tmp_path / "after.mp4"
    paths = second.segment_paths
    tail = [p for p in paths[1:] if int(p.stem[4:]) >= resumed.msn]
    after.write_bytes(paths[0].read_bytes() + b"".join(p.read_bytes() for p in tail))
    resumed_media = decode_media(after)
    assert resumed_media.frame_indices.tolist()[:3] == [k, k + 1, k + 2]
    reference = audio[k * 1920 : k * 1920 + 24000].astype(np.float32)
    lag = audio_offset_seconds(reference, resumed_media.audio, 48000)
    assert abs(resumed_media.audio_start + lag - resumed_media.frame_times[0]) < 0.003


def test_abandon_ends_the_playlist_without_an_encoder(tmp_path: Path) -> None:
    settings = Settings(storage_dir=tmp_path, segment_seconds=1.0, max_sink_restarts=0)
    directory = tmp_path / "s"
    directory.mkdir()
    sink = create_llhls_sink(settings, directory, W, H).start()
    gen = ticks(200, W, H, noise_audio(8.0, 48000), 48000)
    try:
        for _ in range(40):
            sink.write(*next(gen))
        for msn, part in ((1, None), (2, 0)):
            assert sink.llhls_live.timeline.wait_until(msn, part, timeout=10).value == "ready"
        os.kill(sink.pid or 0, signal.SIGKILL)
        with pytest.raises(SinkFailedError, match="encoder died"):
            for tick in gen:
                sink.write(*tick)
        text = sink.llhls_live.playlist().decode()
        assert text.rstrip().endswith("#EXT-X-ENDLIST") and "PRELOAD-HINT" not in text
        assert not sink.alive
    finally:
        sink.close()
