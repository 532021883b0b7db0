"""``facestream render``: one face + one audio file → an MP4 whose video lasts as long as the audio."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

pytestmark = pytest.mark.slow


def _render(*args: object) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "server.cli", "render", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_render_cli_writes_h264_aac_with_matching_durations(
    tmp_path: Path, sample_face_path, sample_speech_path, ffmpeg, probe
):
    pcm, rate = sf.read(sample_speech_path, dtype="float32")
    wav = tmp_path / "speech.wav"
    sf.write(wav, pcm[: int(rate * 2.3)], rate)
    mp3 = tmp_path / "speech.mp3"
    subprocess.run([ffmpeg, "-v", "error", "-i", str(wav), str(mp3)], check=True, timeout=60)
    out = tmp_path / "out.mp4"
    r = _render("--image", sample_face_path, "--audio", mp3, "-o", out)
    assert r.returncode == 0, r.stderr[-2000:]
    streams = {s["codec_type"]: s for s in probe(out)["streams"]}
    assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "aac"
    video = float(streams["video"]["duration"])
    assert abs(video - 2.3) <= 0.04 + 0.03  # ± 1 frame (+ MP3 decoder padding)
    assert abs(float(streams["audio"]["duration"]) - video) <= 0.04
    assert int(streams["video"]["nb_frames"]) == round(video * 25)


def test_render_cli_reports_a_face_less_image(tmp_path: Path, sample_speech_path) -> None:
    blank = tmp_path / "blank.png"
    from PIL import Image

    Image.new("RGB", (300, 300), (120, 120, 120)).save(blank)
    r = _render("--image", blank, "--audio", sample_speech_path, "-o", tmp_path / "o.mp4")
    assert r.returncode == 1 and "face" in r.stderr.lower()
    assert not (tmp_path / "o.mp4").exists()
