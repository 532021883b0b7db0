"""ffmpeg command lines for the sinks, built with ffmpeg-python. Pure: no process is started here.

Both inputs are raw (I420 frames on stdin, s16le mono on an inherited pipe fd), so probing is
turned off (``probesize 32``, ``analyzeduration 0``) and ffmpeg starts encoding at the first
frame. Timestamps come from the frame and sample counts alone, which is what locks A/V.
Frames arrive as I420 (converted by OpenCV in hls.ticks): half the pipe bytes of rgb24 and about
a third less ffmpeg CPU, since ffmpeg no longer converts colour itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ffmpeg

from hls.ffmpeg_tools import ffmpeg_exe

GLOBAL_ARGS = ("-hide_banner", "-nostats", "-loglevel", "warning", "-y")
"""Global options go before the first input (ffmpeg ignores trailing options). ``-y``: the caller
owns the output path, so an existing file there is meant to be replaced."""


@dataclass(frozen=True, slots=True)
class EncodeSettings:
    """What the encoder is asked for. Defaults are the team's low-latency settings (see benchmarks)."""

    width: int
    height: int
    fps: int = 25
    sample_rate: int = 48_000
    out_sample_rate: int = 48_000
    preset: str = "veryfast"
    crf: int = 23
    audio_bitrate: str = "128k"
    gop_frames: int = 25


def _inputs(s: EncodeSettings, audio_fd: int) -> tuple[ffmpeg.nodes.FilterableStream, ...]:
    raw = {"probesize": 32, "analyzeduration": 0}
    video = ffmpeg.input(
        "pipe:0", format="rawvideo", pix_fmt="yuv420p", s=f"{s.width}x{s.height}", framerate=s.fps, **raw
    )
    audio = ffmpeg.input(f"pipe:{audio_fd}", format="s16le", ar=s.sample_rate, ch_layout="mono", **raw)
    return video, audio


def _codec_options(s: EncodeSettings) -> dict[str, object]:
    return {
        "vcodec": "libx264",
        "preset": s.preset,
        "tune": "zerolatency",
        "crf": s.crf,
        "g": s.gop_frames,
        "keyint_min": s.gop_frames,
        "sc_threshold": 0,
        "threads": 1,  # one session per encoder; slice threads only add CPU here
        "pix_fmt": "yuv420p",
        "acodec": "aac",
        "ar": s.out_sample_rate,
        "ac": 1,
        "b:a": s.audio_bitrate,
    }


def _compile(stream: ffmpeg.nodes.OutputStream) -> list[str]:
    args = stream.compile(cmd=ffmpeg_exe())
    return [args[0], *GLOBAL_ARGS, *args[1:]]


def hls_command(
    s: EncodeSettings,
    audio_fd: int,
    playlist: Path,
    segment_pattern: Path,
    segment_seconds: float,
    list_size: int,
    event_playlist: bool,
    delete_old_segments: bool,
    resume: bool = False,
) -> list[str]:
    """ffmpeg args for a live HLS writer. ``list_size`` is ignored (0 = all) for an event playlist.
    ``resume`` continues an existing playlist (numbering and all) after a discontinuity."""
    flags = "independent_segments+temp_file+omit_endlist+program_date_time"
    if delete_old_segments and not event_playlist:
        flags += "+delete_segments"
    if resume:
        flags += "+append_list+discont_start"
    hls: dict[str, object] = {
        "f": "hls",
        "hls_time": segment_seconds,
        "hls_flags": flags,
        "hls_list_size": 0 if event_playlist else list_size,
        "hls_segment_filename": str(segment_pattern),
        "hls_segment_type": "mpegts",
        "start_number": 1,
    }
    if event_playlist:
        hls["hls_playlist_type"] = "event"
    video, audio = _inputs(s, audio_fd)
    return _compile(ffmpeg.output(video, audio, str(playlist), **_codec_options(s), **hls))


def mp4_command(s: EncodeSettings, audio_fd: int, path: Path) -> list[str]:
    """ffmpeg args for a whole-file MP4 (H.264 + AAC, moov first for progressive download)."""
    video, audio = _inputs(s, audio_fd)
    out = ffmpeg.output(video, audio, str(path), **_codec_options(s), f="mp4", movflags="+faststart")
    return _compile(out)


def remux_command(out_path: Path, input_format: str = "mpegts") -> list[str]:
    """ffmpeg args to turn MPEG-TS bytes on stdin (concatenated segments) into an MP4, no re-encode.

    TS segments of one muxer run are byte-concatenable with continuous timestamps, so piping them
    in order avoids the concat demuxer's per-file rebasing and any command-line length limit.
    ``input_format="mp4"``: an LL-HLS init segment followed by its fMP4 segments (also one stream).
    """
    stream = ffmpeg.input("pipe:0", format=input_format)
    bsf = {"bsf:a": "aac_adtstoasc"} if input_format == "mpegts" else {}
    out = ffmpeg.output(stream, str(out_path), c="copy", **bsf, f="mp4", movflags="+faststart")
    return _compile(out)


def fmp4_command(s: EncodeSettings, audio_fd: int, part_seconds: float) -> list[str]:
    """ffmpeg args for CMAF fragmented MP4 on stdout, one fragment per LL-HLS part.

    ``frag_keyframe`` starts a fragment at every keyframe and ``frag_duration`` every
    ``part_seconds`` in between, so parts tile each GOP exactly when the GOP is a multiple of
    the part length. ``delay_moov`` lets the moov carry the AAC priming edit list.
    """
    video, audio = _inputs(s, audio_fd)
    out = ffmpeg.output(
        video, audio, "pipe:1", **_codec_options(s), f="mp4",
        movflags="+frag_keyframe+empty_moov+default_base_moof+cmaf+delay_moov",
        frag_duration=round(part_seconds * 1_000_000), flush_packets=1,
    )  # fmt: skip
    return _compile(out)
