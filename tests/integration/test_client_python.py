"""The Python client (library and command line) against a live server with the CPU engine."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from chunked_streaming_client import ChunkedStreamingClient, StreamingClientError, main, pcm16_chunks
from server.app import create_app
from server.settings import Settings
from tests.support.servers import live_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    storage = tmp_path_factory.mktemp("sessions")
    with live_server(create_app(Settings(storage_dir=storage, static_dir=None))) as url:
        yield url, storage


@pytest.fixture(scope="module")
def short_speech(sample_speech_path: Path, tmp_path_factory) -> Path:
    pcm, rate = sf.read(sample_speech_path, dtype="float32")
    path = tmp_path_factory.mktemp("audio") / "short.wav"
    sf.write(path, pcm[: int(rate * 1.6)], rate)
    return path


def test_library_session_round_trip(server, sample_face_path, short_speech) -> None:
    url, storage = server
    with ChunkedStreamingClient(url) as client:
        info = client.init_session(
            sample_face_path, chunk_duration=0.5, audio_sample_rate=22050, pose_style=[2, 0, 0]
        )
        sid = info["session_id"]
        assert client.hls_url == f"{url}/hls/{sid}/playlist.m3u8" and info["audio_sample_rate"] == 22050
        chunks = pcm16_chunks(short_speech, 22050, 0.5)
        assert sum(len(c) for c in chunks) == 2 * round(1.6 * 22050)
        for i, chunk in enumerate(chunks):
            res = client.feed_audio_chunk(chunk, is_final=i == len(chunks) - 1)
            assert res["status"] == "success" and res["session_id"] == sid
        assert res["session_status"] == "draining"
        status = client.get_status()
        assert status["speech_seconds_accepted"] == pytest.approx(1.6, abs=0.002)
        with pytest.raises(StreamingClientError) as err:
            client.feed_audio_chunk(chunks[0])
        assert err.value.status == 409
        assert (storage / sid).is_dir()
        client.cleanup()
        assert not (storage / sid).exists()
        assert httpx.get(f"{url}/api/audio-driven/chunked/status/{sid}").status_code == 404
        client.cleanup()  # idempotent


def test_client_reports_server_errors(server, tmp_path) -> None:
    url, _ = server
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image")
    with ChunkedStreamingClient(url) as client, pytest.raises(StreamingClientError) as err:
        client.init_session(junk)
    assert err.value.status == 400 and "image" in err.value.message


def test_command_line_streams_a_file_and_prints_the_hls_url(
    server, sample_face_path, short_speech, capsys
) -> None:
    url, _ = server
    rc = main(
        [
            "--server",
            url,
            "--image",
            str(sample_face_path),
            "--audio",
            str(short_speech),
            "--fast",
            "--chunk",
            "0.4",
            "--wait",
            "--cleanup",
        ]
    )
    out = capsys.readouterr()
    assert rc == 0
    assert re.search(rf"HLS: {re.escape(url)}/hls/[0-9a-f]{{32}}/playlist\.m3u8", out.out)
    assert '"status": "complete"' in out.out and "4/4 chunks" in out.err
    total = int(re.search(r'"total_frames_generated": (\d+)', out.out).group(1))
    start = 0.0  # speech lands lead frames after the first feed; the total covers it plus 1.6 s
    assert total >= 1.6 * 25 + start and np.isfinite(total)


def test_init_waits_out_a_full_server_and_gives_up_when_told(sample_face_path, tmp_path) -> None:
    """At capacity the server answers 503 + Retry-After; the client retries within its budget."""
    settings = Settings(storage_dir=tmp_path, static_dir=None, max_sessions=1)
    with live_server(create_app(settings)) as url, ChunkedStreamingClient(url) as first:
        first.init_session(sample_face_path)
        with ChunkedStreamingClient(url) as second:
            started = time.monotonic()
            with pytest.raises(StreamingClientError) as err:
                second.init_session(sample_face_path, wait_for_capacity_s=0)
            assert err.value.status == 503 and err.value.retry_after and time.monotonic() - started < 5
            started = time.monotonic()
            with pytest.raises(StreamingClientError) as err:
                second.init_session(sample_face_path, wait_for_capacity_s=1.5)
            waited = time.monotonic() - started
            assert err.value.status == 503 and 1.5 <= waited < 8, waited
            threading.Timer(1.0, first.cleanup).start()  # a slot frees up while the client waits
            started = time.monotonic()
            info = second.init_session(sample_face_path, wait_for_capacity_s=20)
            assert info["session_id"] != first.session_id and time.monotonic() - started >= 1.0
            second.cleanup()
