"""LL-HLS groundwork: box framing, fragment parsing, part/segment timeline, playlist, and the sink."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from hls.errors import SinkFailedError
from hls.llhls.boxes import BoxFormatError, BoxReader
from hls.llhls.fragments import Fmp4Splitter, Fragment, InitSegment, Track, TrackRun, parse_fragment
from hls.llhls.playlist import render_playlist, render_timeline
from hls.llhls.sink import LlHlsSink
from hls.llhls.timeline import LlHlsTimeline, Readiness
from hls.testpattern import audio_offset_seconds, decode_media, noise_audio, ticks

ANCHOR = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
W, H = 256, 128


@pytest.fixture(scope="module")
def cmaf_bytes(ffmpeg: str) -> bytes:
    """3 s of real ffmpeg CMAF output with our part settings (25 fps, GOP 25, 200 ms fragments)."""
    cmd = [
        ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=s=256x128:r=25",
        "-f", "lavfi", "-i", "sine=f=440:r=48000", "-t", "3", "-c:v", "libx264", "-preset", "ultrafast",
        "-tune", "zerolatency", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-ac", "1", "-f", "mp4",
        "-movflags", "+frag_keyframe+empty_moov+default_base_moof+cmaf+delay_moov",
        "-frag_duration", "200000", "pipe:1",
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout


def _box(typ: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), typ) + payload


def _full(typ: bytes, version: int, flags: int, body: bytes) -> bytes:
    return _box(typ, bytes([version]) + flags.to_bytes(3, "big") + body)


# -- boxes & fragments ---------------------------------------------------------------------------
@pytest.mark.parametrize("chunk", [1, 13, 4096, 1 << 30])
def test_splitter_yields_init_then_every_fragment_for_any_chunking(cmaf_bytes: bytes, chunk: int) -> None:
    splitter = Fmp4Splitter()
    items: list[InitSegment | Fragment] = []
    for i in range(0, len(cmaf_bytes), chunk):
        items += splitter.feed(cmaf_bytes[i : i + chunk])
    init, frags = items[0], items[1:]
    assert isinstance(init, InitSegment) and init.data.startswith(cmaf_bytes[:8])
    kinds = {t.kind: t for t in init.tracks.values()}
    assert set(kinds) == {"vide", "soun"} and kinds["soun"].timescale == 48000
    assert len(frags) == 15 and all(isinstance(f, Fragment) for f in frags)
    video = kinds["vide"]
    runs = [f.runs[video.track_id] for f in frags]
    assert [r.samples for r in runs] == [5] * 15
    assert [r.starts_with_sync for r in runs] == [i % 5 == 0 for i in range(15)]
    assert [r.base_time for r in runs] == [i * 5 * video.timescale // 25 for i in range(15)]
    # the pieces are the stream: init + fragments (+ the trailing mfra index) reassemble it byte for byte
    joined = init.data + b"".join(f.data for f in frags)
    assert cmaf_bytes.startswith(joined) and cmaf_bytes[len(joined) + 4 : len(joined) + 8] == b"mfra"


def test_box_reader_handles_largesize_and_rejects_garbage(cmaf_bytes: bytes) -> None:
    big = struct.pack(">I4sQ", 1, b"free", 16 + 3) + b"abc"
    reader = BoxReader()
    assert reader.feed(big[:10]) == [] and reader.pending_bytes == 10
    (box,) = reader.feed(big[10:] + _box(b"skip", b"")[:4])
    assert box.type == b"free" and box.payload == b"abc" and reader.pending_bytes == 4
    with pytest.raises(BoxFormatError, match="end of file"):
        BoxReader().feed(struct.pack(">I4s", 0, b"mdat"))
    with pytest.raises(BoxFormatError, match="impossible"):
        BoxReader().feed(struct.pack(">I4s", 3, b"mdat"))
    with pytest.raises(BoxFormatError, match="limit"):
        BoxReader(max_box_bytes=100).feed(struct.pack(">I4s", 1000, b"mdat"))
    with pytest.raises(BoxFormatError, match="tkhd"):
        Fmp4Splitter().feed(_box(b"ftyp", b"iso6") + _box(b"moov", _box(b"trak", b"")))
    init = Fmp4Splitter().feed(cmaf_bytes)[0]
    with pytest.raises(BoxFormatError, match="mdat without"):
        Fmp4Splitter().feed(init.data + _box(b"mdat", b""))
    moof_at = len(init.data)
    (moof_size,) = struct.unpack_from(">I", cmaf_bytes, moof_at)
    truncated = bytearray(cmaf_bytes[moof_at : moof_at + moof_size])
    struct.pack_into(">I", truncated, 8, 12)  # shrink mfhd to 12 bytes: its sequence field is cut off
    with pytest.raises(BoxFormatError):
        Fmp4Splitter().feed(init.data + bytes(truncated) + _box(b"mdat", b""))


def test_trun_defaults_and_first_sample_flags_decide_sync() -> None:
    non_sync, sync = 0x00010000, 0x02000000
    tracks = {7: Track(7, 90000, "vide", default_duration=3600, default_flags=non_sync)}
    tfhd = _full(b"tfhd", 0, 0x020000, struct.pack(">I", 7))  # default-base-is-moof, no overrides
    tfdt = _full(b"tfdt", 1, 0, struct.pack(">Q", 2**33))
    trun_plain = _full(b"trun", 0, 0x200, struct.pack(">I", 3) + struct.pack(">III", 10, 11, 12))
    trun_first = _full(b"trun", 0, 0x004 | 0x200, struct.pack(">II", 2, sync) + struct.pack(">II", 10, 11))
    mfhd = _full(b"mfhd", 0, 0, struct.pack(">I", 42))
    mdat = BoxReader().feed(_box(b"mdat", b"x" * 5))[0]
    for trun, samples, is_sync in ((trun_plain, 3, False), (trun_first, 2, True)):
        moof = BoxReader().feed(_box(b"moof", mfhd + _box(b"traf", tfhd + tfdt + trun)))[0]
        frag = parse_fragment(moof, mdat, tracks)
        assert frag.sequence == 42 and frag.data.endswith(b"x" * 5)
        assert frag.runs[7] == TrackRun(7, 2**33, samples * 3600, samples, is_sync)


# -- timeline & playlist ---------------------------------------------------------------------------
INIT = InitSegment(b"init", {1: Track(1, 1000, "vide"), 2: Track(2, 48000, "soun")})


def _frag(i: int, ms: int = 200, gop_parts: int = 5) -> Fragment:
    video = TrackRun(1, i * ms, ms, 5, i % gop_parts == 0)
    audio = TrackRun(2, i * ms * 48, ms * 48, 9, True)
    return Fragment(i + 1, f"part{i}".encode(), {1: video, 2: audio})


def _timeline(parts: int, **kw) -> LlHlsTimeline:
    tl = LlHlsTimeline(ANCHOR, **kw)
    tl.set_init(INIT)
    for i in range(parts):
        tl.add_fragment(_frag(i))
    return tl


def test_parts_group_into_one_second_segments_and_resources_resolve() -> None:
    tl = _timeline(13)
    state = tl.snapshot()
    assert [(s.msn, len(s.parts), s.complete) for s in state.segments] == [
        (1, 5, True),
        (2, 5, True),
        (3, 3, False),
    ]
    assert [p.independent for p in state.segments[1].parts] == [True, False, False, False, False]
    assert state.segments[1].start == pytest.approx(1.0) and state.next_part == (3, 3)
    assert tl.resource("init.mp4") == b"init"
    assert tl.resource("part_2_1.m4s") == b"part6"
    assert tl.resource("seg_2.m4s") == b"".join(f"part{i}".encode() for i in range(5, 10))
    assert tl.resource("seg_3.m4s") is None, "an open segment is not served whole"
    assert tl.resource("part_3_3.m4s") is None and tl.resource("../etc/passwd") is None
    for _ in range(2):
        tl.add_fragment(_frag(len(tl.segments[-1].parts) + 10))
    assert tl.snapshot().next_part == (4, 0), "the hint after a full segment names the next segment"


def test_an_audio_only_tail_fragment_becomes_a_dependent_part() -> None:
    tl = _timeline(5)
    tail = Fragment(6, b"tail", {2: TrackRun(2, 48000, 960, 1, True)})
    part = tl.add_fragment(tail)
    assert (part.msn, part.index, part.independent) == (2, 0, False)
    assert part.start == pytest.approx(1.0) and part.duration == pytest.approx(0.02)
    with pytest.raises(ValueError, match="no samples"):
        tl.add_fragment(Fragment(7, b"", {}))


def test_window_and_retention_bound_memory() -> None:
    tl = _timeline(60, window_segments=3, retain_segments=2)
    state = tl.snapshot()
    # segment 12 is full but still open: it closes with segment 13's first part (timeline.py)
    assert [(s.msn, s.complete) for s in state.segments] == [(9, True), (10, True), (11, True), (12, False)]
    assert tl.next_part == (13, 0) and tl.resource("seg_12.m4s") is None
    assert [s.msn for s in tl.segments] == [8, 9, 10, 11, 12]
    assert tl.resource("seg_8.m4s") is not None and tl.resource("seg_7.m4s") is None
    tl.add_fragment(_frag(60))
    after = [(s.msn, s.complete) for s in tl.snapshot().segments]
    assert after == [(10, True), (11, True), (12, True), (13, False)]
    assert tl.resource("seg_12.m4s") is not None and tl.resource("seg_8.m4s") is None


def test_playlist_follows_rfc8216bis_for_parts_hints_and_endlist() -> None:
    tl = _timeline(38, window_segments=6)
    text = render_timeline(tl)
    lines = text.splitlines()
    assert lines[:8] == [
        "#EXTM3U",
        "#EXT-X-VERSION:9",
        "#EXT-X-TARGETDURATION:1",
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600",
        "#EXT-X-PART-INF:PART-TARGET=0.200",
        "#EXT-X-MEDIA-SEQUENCE:2",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        '#EXT-X-MAP:URI="init.mp4"',
    ]
    assert lines[8] == "#EXT-X-PROGRAM-DATE-TIME:2026-01-01T12:00:01.000+00:00"
    assert [ln for ln in lines if ln.startswith("seg_")] == [f"seg_{m}.m4s" for m in range(2, 8)]
    parts = [ln for ln in lines if ln.startswith("#EXT-X-PART:")]
    # parts of the open segment and the newest complete one only (hls.js freezes otherwise: playlist.py)
    assert parts[0] == '#EXT-X-PART:DURATION=0.200,URI="part_7_0.m4s",INDEPENDENT=YES'
    assert len(parts) == 5 + 3 and parts[-1] == '#EXT-X-PART:DURATION=0.200,URI="part_8_2.m4s"'
    assert lines[-1] == '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part_8_3.m4s"'
    assert "#EXT-X-ENDLIST" not in text
    tl.end()
    ended = render_timeline(tl)
    assert ended.rstrip().endswith("#EXT-X-ENDLIST") and "PRELOAD-HINT" not in ended
    assert "#EXTINF:0.600,\nseg_8.m4s" in ended
    with pytest.raises(ValueError, match="after end"):
        tl.add_fragment(_frag(99))


def test_target_duration_covers_a_long_segment() -> None:
    tl = LlHlsTimeline(ANCHOR)
    tl.set_init(INIT)
    for i in range(8):  # keyframes only every 2.8 s: segments still close at the target, flagged truthfully
        tl.add_fragment(_frag(i, ms=350, gop_parts=8))
    state = tl.snapshot()
    assert [round(s.duration, 2) for s in state.segments] == [1.05, 1.05, 0.7]
    assert [s.independent for s in state.segments] == [True, False, False]
    text = render_playlist(state)
    assert "#EXT-X-TARGETDURATION:1\n" in text and "INDEPENDENT-SEGMENTS" not in text


def test_blocking_reload_readiness_and_wait() -> None:
    tl = _timeline(7)  # segment 1 complete, segment 2 has parts 0 and 1
    assert tl.readiness(1) is Readiness.READY and tl.readiness(2, 1) is Readiness.READY
    assert tl.readiness(2, 2) is Readiness.WAIT and tl.readiness(2) is Readiness.WAIT
    assert tl.readiness(3, 0) is Readiness.WAIT and tl.readiness(5) is Readiness.BAD_REQUEST
    assert tl.readiness(-1) is Readiness.BAD_REQUEST
    assert tl.readiness(1, 5) is Readiness.READY, "part 5 of a finished 5-part segment = part 0 of the next"
    full = _timeline(10)
    assert full.readiness(2, 4) is Readiness.READY and full.readiness(2, 5) is Readiness.WAIT
    t0 = time.monotonic()
    assert tl.wait_until(2, 2, timeout=0.05) is Readiness.WAIT and time.monotonic() - t0 >= 0.05
    adder = threading.Timer(0.1, lambda: tl.add_fragment(_frag(7)))
    adder.start()
    t0 = time.monotonic()
    assert tl.wait_until(2, 2, timeout=2.0) is Readiness.READY
    assert 0.05 < time.monotonic() - t0 < 1.0
    adder.join()
    threading.Timer(0.05, tl.end).start()
    assert tl.wait_until(3, 0, timeout=2.0) is Readiness.READY, "end() releases waiters"


# -- the sink with a real ffmpeg ---------------------------------------------------------------------
def test_llhls_sink_parts_decode_back_to_the_right_frames_with_locked_audio(tmp_path: Path) -> None:
    n = 3 * 25
    audio = noise_audio(3.0, 48000, seed=11)
    with LlHlsSink("t", W, H, write_timeout=10.0, anchor=ANCHOR) as sink:
        for tick in ticks(n, W, H, audio, 48000):
            sink.write(*tick)
        sink.end()
    tl = sink.timeline
    state = tl.snapshot()
    assert [(s.msn, len(s.parts)) for s in state.segments] == [(1, 5), (2, 5), (3, 5)]
    assert all(p.duration == pytest.approx(0.2) for s in state.segments for p in s.parts)
    assert [p.independent for p in state.segments[2].parts] == [True, False, False, False, False]
    init = tl.resource("init.mp4")
    assert init is not None
    whole = tmp_path / "whole.mp4"
    whole.write_bytes(init + b"".join(tl.resource(f"seg_{m}.m4s") or b"" for m in (1, 2, 3)))
    media = decode_media(whole)
    assert media.frame_indices.tolist() == list(range(n))
    assert abs(media.audio_end - media.video_end) < 0.04
    lag = audio_offset_seconds(audio[:48000].astype(np.float32), media.audio, 48000)
    assert abs(media.audio_start + lag - media.frame_times[0]) < 0.003
    # a player joining at segment 2 needs only the init segment and parts from an independent one
    joined = tmp_path / "join.mp4"
    joined.write_bytes(init + (tl.resource("part_2_0.m4s") or b"") + (tl.resource("part_2_1.m4s") or b""))
    assert decode_media(joined).frame_indices.tolist() == list(range(25, 35))
    assert render_timeline(tl).rstrip().endswith("#EXT-X-ENDLIST")


def test_llhls_sink_reports_a_dead_encoder() -> None:
    audio = noise_audio(1.0, 48000)
    gen = ticks(25, W, H, audio, 48000)
    sink = LlHlsSink("dead", W, H).start()
    try:
        sink.write(*next(gen))
        assert sink.pid is not None
        os.kill(sink.pid, signal.SIGKILL)
        with pytest.raises(SinkFailedError):
            for tick in gen:
                sink.write(*tick)
                time.sleep(0.02)
    finally:
        sink.close()
    assert not [t for t in threading.enumerate() if "llhls[dead]" in t.name]
    with pytest.raises(ValueError, match="whole"):
        LlHlsSink("bad", W, H, part_seconds=0.3)


def test_an_independent_parser_reads_the_ll_hls_playlist() -> None:
    m3u8 = pytest.importorskip("m3u8", reason="m3u8 (dev dependency) cross-checks the playlist syntax")
    tl = _timeline(13)
    parsed = m3u8.loads(render_timeline(tl))
    assert parsed.version == 9 and parsed.target_duration == 1 and parsed.media_sequence == 1
    assert parsed.server_control.can_block_reload == "YES" and parsed.server_control.part_hold_back == 0.6
    assert parsed.part_inf.part_target == 0.2 and parsed.is_independent_segments
    assert parsed.segment_map[0].uri == "init.mp4"
    assert [s.uri for s in parsed.segments] == ["seg_1.m4s", "seg_2.m4s", None]
    assert [len(s.parts) for s in parsed.segments] == [0, 5, 3]
    assert [p.independent for p in parsed.segments[1].parts] == ["YES", None, None, None, None]
    assert parsed.preload_hint.hint_type == "PART" and parsed.preload_hint.uri == "part_3_3.m4s"
    assert parsed.segments[0].program_date_time == ANCHOR
    tl.end()
    assert m3u8.loads(render_timeline(tl)).is_endlist
