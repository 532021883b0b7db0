"""Locating the ffmpeg binary.

Order: the FACESTREAM_FFMPEG environment variable, then imageio-ffmpeg's bundled static build
(always present, has libx264 + AAC), then an ``ffmpeg`` on PATH.
"""

from __future__ import annotations

import functools
import os
import shutil


@functools.cache
def ffmpeg_exe() -> str:
    env = os.environ.get("FACESTREAM_FFMPEG")
    if env:
        return env
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # pragma: no cover - imageio-ffmpeg is a pinned dependency
        found = shutil.which("ffmpeg")
        if found:
            return found
        raise RuntimeError("no ffmpeg found: install imageio-ffmpeg or set FACESTREAM_FFMPEG") from None
