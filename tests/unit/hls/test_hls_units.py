"""Pure parts of the HLS sinks: tick validation, playlist parsing/closing, ffmpeg argument building."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from hls.ffmpeg import EncodeSettings, hls_command, mp4_command, remux_command
from hls.playlist import ENDLIST, append_endlist, has_endlist, parse_media_playlist
from hls.testpattern import audio_offset_seconds, barcode_frame, noise_audio, read_barcode
from hls.ticks import TickValidator, samples_for_tick
from models.types import AudioSlice, VideoFrame

PLAYLIST = """#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:1
#EXT-X-MEDIA-SEQUENCE:7
#EXT-X-INDEPENDENT-SEGMENTS
#EXTINF:1.000000,
#EXT-X-PROGRAM-DATE-TIME:2026-11-24T07:09:00.206+0000
seg_00007.ts
#EXTINF:0.960000,
#EXT-X-PROGRAM-DATE-TIME:2026-11-24T07:09:01.206+0000
seg_00008.ts
"""


@pytest.mark.parametrize(("rate", "fps"), [(48000, 25), (44100, 30), (16000, 25), (22050, 24), (8000, 30)])
def test_samples_per_tick_sum_exactly_to_the_sample_clock(rate: int, fps: int) -> None:
    for n in (1, 7, 25, 1000, 90_001):
        assert sum(samples_for_tick(k, rate, fps) for k in range(n)) == n * rate // fps


def _tick(i: int, n_audio: int = 1920, shape=(64, 64, 3), rate: int = 48000) -> tuple[VideoFrame, AudioSlice]:
    return VideoFrame(i, np.zeros(shape, np.uint8)), AudioSlice(i, np.zeros(n_audio, np.int16), rate)


def test_validator_accepts_consecutive_ticks_and_returns_raw_bytes() -> None:
    v = TickValidator(64, 64, 25, 48000)
    for i in range(5, 8):
        _, slice_ = _tick(i)
        yy, xx = np.mgrid[0:64, 0:64]
        gradient = np.stack([xx * 4, yy * 4, (xx + yy) * 2], axis=-1).astype(np.uint8)
        frame = VideoFrame(i, gradient)
        video, audio = v.check(frame, slice_)
        assert len(video) == 64 * 64 * 3 // 2 and len(audio) == 1920 * 2  # I420 + s16le
        back = cv2.cvtColor(np.frombuffer(video, np.uint8).reshape(96, 64), cv2.COLOR_YUV2RGB_I420)
        assert np.abs(back.astype(int) - frame.image.astype(int)).mean() < 4
        v.commit(frame)
    assert v.ticks == 3 and v.next_index == 8


def test_validator_converts_a_repeated_read_only_picture_once_and_a_writeable_one_every_time() -> None:
    """A stale tick or a still frame at rest sends the same read-only picture again: its I420
    bytes are reused. A writeable picture may have been changed in place, so it is converted anew."""
    v = TickValidator(64, 64, 25, 48000)
    still = np.full((64, 64, 3), 90, np.uint8)
    still.setflags(write=False)
    first, _ = v.check(VideoFrame(0, still), _tick(0)[1])
    v.commit(VideoFrame(0, still))
    again, _ = v.check(VideoFrame(1, still), _tick(1)[1])
    assert again is first
    v.commit(VideoFrame(1, still))
    live = np.full((64, 64, 3), 90, np.uint8)
    a, _ = v.check(VideoFrame(2, live), _tick(2)[1])
    v.commit(VideoFrame(2, live))
    live[:] = 200  # the same object, new pixels
    b, _ = v.check(VideoFrame(3, live), _tick(3)[1])
    assert a == first and b != a


@pytest.mark.parametrize(
    ("tick", "message"),
    [
        (_tick(0, shape=(64, 62, 3)), "expected"),
        (_tick(0, n_audio=1919), "audio"),
        (_tick(0, rate=16000), "sample rate"),
        ((_tick(0)[0], _tick(1)[1]), "index"),
        ((VideoFrame(0, np.zeros((64, 64, 3), np.float32)), _tick(0)[1]), "uint8"),
        ((_tick(0)[0], AudioSlice(0, np.zeros(1920, np.float32), 48000)), "int16"),
    ],
)
def test_validator_rejects_bad_ticks(tick, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TickValidator(64, 64, 25, 48000).check(*tick)


def test_validator_rejects_gaps_and_odd_sizes() -> None:
    v = TickValidator(64, 64, 25, 48000)
    v.commit(_tick(0)[0])
    with pytest.raises(ValueError, match="not the next"):
        v.check(*_tick(2))
    with pytest.raises(ValueError, match="even"):
        TickValidator(63, 64, 25, 48000)


def test_parse_media_playlist_reads_sequence_durations_and_dates() -> None:
    segs = parse_media_playlist(PLAYLIST)
    listed = [(s.sequence, s.uri, s.duration) for s in segs]
    assert listed == [(7, "seg_00007.ts", 1.0), (8, "seg_00008.ts", 0.96)]
    assert segs[1].program_date_time is not None and segs[1].program_date_time.second == 1
    assert not has_endlist(PLAYLIST)


def test_append_endlist_is_atomic_and_idempotent(tmp_path: Path) -> None:
    p = tmp_path / "playlist.m3u8"
    p.write_text(PLAYLIST)
    append_endlist(p)
    append_endlist(p)
    text = p.read_text()
    assert text.count(ENDLIST) == 1 and text.rstrip().endswith(ENDLIST)
    assert parse_media_playlist(text) == parse_media_playlist(PLAYLIST)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["playlist.m3u8"]


def test_append_endlist_fixes_a_zero_target_duration(tmp_path: Path) -> None:
    p = tmp_path / "short.m3u8"
    p.write_text(PLAYLIST.replace("TARGETDURATION:1", "TARGETDURATION:0"))
    append_endlist(p)
    assert "#EXT-X-TARGETDURATION:1\n" in p.read_text()


def _opt(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_hls_command_carries_the_low_latency_settings(tmp_path: Path) -> None:
    s = EncodeSettings(512, 512, gop_frames=25)
    args = hls_command(s, 7, tmp_path / "p.m3u8", tmp_path / "seg_%05d.ts", 1.0, 6, False, False)
    assert args.index("-loglevel") < args.index("-i")
    assert _opt(args, "-tune") == "zerolatency" and _opt(args, "-preset") == "veryfast"
    assert _opt(args, "-g") == "25" and _opt(args, "-keyint_min") == "25"
    assert _opt(args, "-sc_threshold") == "0" and "yuv420p" in args
    assert "pipe:0" in args and "pipe:7" in args and args.count("-probesize") == 2
    flags = _opt(args, "-hls_flags")
    assert {"independent_segments", "temp_file", "omit_endlist", "program_date_time"} <= set(flags.split("+"))
    assert "delete_segments" not in flags and _opt(args, "-hls_list_size") == "6"
    event = hls_command(s, 7, tmp_path / "p.m3u8", tmp_path / "s%05d.ts", 1.0, 6, True, False)
    assert _opt(event, "-hls_playlist_type") == "event" and _opt(event, "-hls_list_size") == "0"
    bounded = hls_command(s, 7, tmp_path / "p.m3u8", tmp_path / "s%05d.ts", 1.0, 6, False, True)
    assert "delete_segments" in _opt(bounded, "-hls_flags")


def test_mp4_and_remux_commands(tmp_path: Path) -> None:
    mp4 = mp4_command(EncodeSettings(64, 64), 5, tmp_path / "o.mp4")
    assert _opt(mp4, "-movflags") == "+faststart" and mp4[-1] == str(tmp_path / "o.mp4")
    remux = remux_command(tmp_path / "r.mp4")
    assert _opt(remux, "-c") == "copy" and _opt(remux, "-bsf:a") == "aac_adtstoasc"


def test_barcode_round_trip_and_audio_offset_measure() -> None:
    for i in (0, 1, 25, 4097, 65535):
        assert read_barcode(barcode_frame(i, 256, 128)) == i
    audio = noise_audio(1.0, 16000, seed=3)
    delayed = np.concatenate([np.zeros(160, np.int16), audio])
    assert audio_offset_seconds(audio, delayed, 16000) == pytest.approx(0.01)
