"""ffmpeg command lines for the sinks, built with ffmpeg-python. Pure: no process is started here.

Both inputs are raw (rgb24 frames on stdin, s16le mono on an inherited pipe fd), so probing is
turned off (``probesize 32``, ``analyzeduration 0``) and ffmpeg starts encoding at the first
frame. Timestamps come from the frame and sample counts alone, which is what locks A/V.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ffmpeg

from hls.tools import ffmpeg_exe

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
        "pipe:0", format="rawvideo", pix_fmt="rgb24", s=f"{s.width}x{s.height}", framerate=s.fps, **raw
    )
    audio = ffmpeg.input(f"pipe:{audio_fd}", format="s16le", ar=s.sample_rate, ac=1, **raw)
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
) -> list[str]:
    """ffmpeg args for a live HLS writer. ``list_size`` is ignored (0 = all) for an event playlist."""
    flags = "independent_segments+temp_file+omit_endlist+program_date_time"
    if delete_old_segments and not event_playlist:
        flags += "+delete_segments"
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


def remux_command(concat_list: Path, out_path: Path) -> list[str]:
    """ffmpeg args to join MPEG-TS segments into one MP4 without re-encoding."""
    stream = ffmpeg.input(str(concat_list), format="concat", safe=0)
    out = ffmpeg.output(
        stream, str(out_path), c="copy", **{"bsf:a": "aac_adtstoasc"}, f="mp4", movflags="+faststart"
    )
    return _compile(out)
