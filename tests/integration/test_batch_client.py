"""The Python client's whole-audio helpers and CLI modes against a live server (CPU engine)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import soundfile as sf

from chunked_streaming_client import ChunkedStreamingClient, StreamingClientError, main
from server.app import create_app
from server.settings import Settings
from tests.support.servers import live_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    storage = tmp_path_factory.mktemp("sessions")
    with live_server(create_app(Settings(storage_dir=storage, static_dir=None))) as url:
        yield url


@pytest.fixture(scope="module")
def clip(sample_speech_path: Path, tmp_path_factory) -> Path:
    pcm, rate = sf.read(sample_speech_path, dtype="float32")
    path = tmp_path_factory.mktemp("audio") / "clip.flac"
    sf.write(path, pcm[: int(rate * 1.5)], rate)
    return path


def test_render_and_stream_file_helpers(server, sample_face_path, clip, tmp_path, probe) -> None:
    with ChunkedStreamingClient(server) as client:
        out = client.render(sample_face_path, clip, tmp_path / "o.mp4", seed=3, pose_style=[3, 0, 0])
        fmt = probe(out)["format"]
        assert abs(float(fmt["duration"]) - 1.5) <= 0.05
        with pytest.raises(StreamingClientError) as e:
            client.render(sample_face_path, clip, tmp_path / "bad.mp4", nfe=2)
        assert e.value.status == 422 and not (tmp_path / "bad.mp4").exists()

        url = client.stream_file(sample_face_path, clip)
        assert url.startswith(server) and url.endswith("/playlist.m3u8")
        deadline = time.monotonic() + 30
        while (st := client.get_status())["status"] != "complete" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert st["status"] == "complete" and st["playlist_ready"]
        assert httpx.get(url).text.rstrip().endswith("#EXT-X-ENDLIST")
        assert httpx.get(client.recording_url, timeout=30).headers["content-type"] == "video/mp4"
        client.cleanup()


def test_cli_render_and_stream_modes(server, sample_face_path, clip, tmp_path, capsys, probe) -> None:
    out = tmp_path / "cli.mp4"
    base = ["--server", server, "--image", str(sample_face_path), "--audio", str(clip)]
    assert main(["--mode", "render", *base, "-o", str(out)]) == 0
    assert {s["codec_type"] for s in probe(out)["streams"]} == {"video", "audio"}
    assert main(["--mode", "stream", *base, "--wait", "--cleanup"]) == 0
    printed = capsys.readouterr().out
    assert "HLS: http" in printed and '"status": "complete"' in printed
