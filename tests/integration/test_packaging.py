"""`pip install ./` into a fresh venv gives a working `facestream` command.

The wheel is built from a copy of the package sources (so the working tree gets no build/ and no
stale files), installed offline from .wheelhouse (the server's pinned wheels, filled by
scripts/setup-agent.sh) so the test takes about a minute instead of a download. mediapipe goes in
afterwards with --no-deps, as documented: pip cannot drop one package's declared dependencies
(jax, the GUI OpenCV, protobuf<5), so the wheel does not declare it and `facestream` says how to
install it when it is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.support.agent import ROOT

WHEELHOUSE = ROOT / ".wheelhouse"
SOURCES = ("facestream", "server", "models", "hls", "pyproject.toml", "README.md")


def _run(cmd: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_pip_install_then_facestream_render(tmp_path, sample_face_path, sample_speech_path, probe):
    if not WHEELHOUSE.is_dir():
        if os.environ.get("CI"):
            pytest.fail(".wheelhouse missing: scripts/test.sh runs scripts/setup-agent.sh")
        pytest.skip("no .wheelhouse: run scripts/setup-agent.sh")
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, src / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    pip = [
        str(venv / "bin/python"),
        "-m",
        "pip",
        "install",
        "-q",
        "--no-index",
        "--find-links",
        str(WHEELHOUSE),
    ]
    out = _run([*pip, "./src"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]

    work = tmp_path / "work"  # not the repository: the installed package must be what runs
    work.mkdir()
    pcm, rate = sf.read(sample_speech_path, dtype="float32")
    sf.write(work / "speech.wav", pcm[: 2 * rate], rate)
    render = [
        str(venv / "bin/facestream"),
        "render",
        "--image",
        str(sample_face_path),
        "--audio",
        "speech.wav",
    ]

    missing = _run([*render, "-o", "none.mp4"], cwd=work)
    assert missing.returncode != 0 and "pip install --no-deps mediapipe==0.10.21" in missing.stderr, (
        missing.stderr[-2000:]
    )

    out = _run([*pip, "--no-deps", "mediapipe==0.10.21"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    done = _run([*render, "-o", "out.mp4"], cwd=work, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    info = probe(work / "out.mp4")
    kinds = sorted(s["codec_type"] for s in info["streams"])
    assert kinds == ["audio", "video"]
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    assert int(video["nb_frames"]) == 50
    assert np.isclose(float(info["format"]["duration"]), 2.0, atol=0.1)

    meta = _run(
        [
            str(venv / "bin/python"),
            "-c",
            "import importlib.metadata as m; print('\\n'.join(m.requires('facestream')))",
        ],
        cwd=work,
    )
    requires = meta.stdout.splitlines()
    assert any(r.startswith("fastapi") for r in requires) and any(r.startswith("aiortc") for r in requires)
    for extra in ("pipecat", "livekit", "neural"):
        assert any(f'extra == "{extra}"' in r for r in requires), extra
