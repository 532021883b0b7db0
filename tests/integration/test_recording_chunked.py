"""Session recordings: a chunked live session (live-window playlist, default settings) downloaded as
one MP4 during and after the session must match what was streamed: same duration as the frames
the clock emitted, and the fed speech found in its audio where the server scheduled it. Also the
page-support routes: avatar preview JPEG and the status' playlist progress."""

from __future__ import annotations

import time

import cv2
import httpx
import numpy as np
import pytest
import soundfile as sf
import soxr

from server.app import create_app
from server.settings import Settings
from tests.support.api import feed, init_session, wait_status
from tests.support.media import Decoded, find_in, wav_bytes
from tests.support.processes import segment_numbers
from tests.support.servers import live_server

pytestmark = pytest.mark.slow
SECONDS = 3.0


@pytest.fixture(scope="module", params=["ll", "ts"])
def server(tmp_path_factory, request):
    storage = tmp_path_factory.mktemp("rec")
    app = create_app(
        Settings(
            storage_dir=storage, static_dir=None, max_sessions=4, live_window_segments=2,
            hls_mode=request.param,
        )
    )  # fmt: skip
    with live_server(app) as url:
        yield url, storage


def test_recording_of_a_chunked_session_matches_the_stream(
    server, sample_face_path, sample_speech_path, tmp_path, probe
):
    url, _ = server
    pcm, rate = sf.read(sample_speech_path, dtype="float32")
    pcm = pcm[: int(rate * SECONDS)]
    with httpx.Client(base_url=url, timeout=60) as c:
        info = init_session(c, sample_face_path.read_bytes(), chunk_duration=0.5)
        sid = info["session_id"]
        assert info["face"]["faces_found"] == 1 and len(info["face"]["box"]) == 4  # the animated face
        assert info["preview_url"] == f"/api/audio-driven/chunked/preview/{sid}"
        prev = c.get(info["preview_url"])
        assert prev.status_code == 200 and prev.headers["content-type"] == "image/jpeg"
        assert prev.headers["cache-control"] == "no-store"
        img = cv2.imdecode(np.frombuffer(prev.content, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and (img.shape[1], img.shape[0]) == (info["width"], info["height"])

        st = c.get(f"/api/audio-driven/chunked/status/{sid}").json()
        assert "playlist_ready" in st and "segments" in st
        time.sleep(3.5)  # idle: more segments than the 2-segment live window
        st = c.get(f"/api/audio-driven/chunked/status/{sid}").json()
        assert st["playlist_ready"] is True and st["segments"] >= 3, st
        during = c.get(f"/api/audio-driven/chunked/session/{sid}/recording.mp4")
        assert during.status_code == 200 and during.headers["content-type"] == "video/mp4"
        (tmp_path / "during.mp4").write_bytes(during.content)
        assert float(probe(tmp_path / "during.mp4")["format"]["duration"]) >= 3.0 - 0.1

        step = rate // 2
        chunks = [pcm[i : i + step] for i in range(0, len(pcm), step)]
        starts = []
        for i, chunk in enumerate(chunks):
            r = feed(c, sid, wav_bytes(chunk, rate), final=i == len(chunks) - 1)
            assert r.status_code == 200, r.text
            starts.append(r.json()["scheduled_start_seconds"])
        st = wait_status(c, sid, "complete", 30)
        assert st["status"] == "complete", st
        playlist = c.get(info["hls_url"]).text
        assert len(segment_numbers(playlist)) <= 2  # the live playlist still lists only its window
        after = c.get(f"/api/audio-driven/chunked/session/{sid}/recording.mp4")
        assert after.status_code == 200
        mp4 = tmp_path / "after.mp4"
        mp4.write_bytes(after.content)

    streams = {s["codec_type"]: s for s in probe(mp4)["streams"]}
    assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "aac"
    frames = st["total_frames_generated"]
    video_s = float(streams["video"]["duration"])
    assert abs(video_s - frames / 25) <= 0.04 + 1e-6, (video_s, frames)
    assert int(streams["video"]["nb_frames"]) == frames
    audio = Decoded(mp4).audio_at(16000)  # aligned by timestamps, as a player does
    ref = soxr.resample(pcm, rate, 16000).astype(np.float32)
    offset, peak = find_in(ref, audio, 16000)
    start = starts[0]
    print(f"recording: {frames} frames, speech at {offset:.3f} s (scheduled {start:.3f} s), peak {peak:.3f}")
    assert peak > 0.9, peak
    assert abs(offset - start) <= 0.005, (offset, start)


def test_recording_and_preview_errors(server):
    url, _ = server
    with httpx.Client(base_url=url, timeout=10) as c:
        assert c.get("/api/audio-driven/chunked/session/../x/recording.mp4").status_code == 404
        assert c.get(f"/api/audio-driven/chunked/session/{'0' * 32}/recording.mp4").status_code == 404
        assert c.get(f"/api/audio-driven/chunked/preview/{'0' * 32}").status_code == 404
        assert c.get("/api/audio-driven/chunked/preview/NOT-AN-ID").status_code == 404
