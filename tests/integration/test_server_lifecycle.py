"""Session lifecycle on a real uvicorn with the probe engine (exact, cheap frames): the clock through
pauses, A/V lock per frame, limits (429/503), deletion, expiry, graceful shutdown, barge-in."""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from server.app import create_app
from server.settings import Settings
from tests.support.api import feed, init_session, wait_status
from tests.support.engines import ProbeEngine
from tests.support.media import Decoded, find_in, session_media, wav_bytes
from tests.support.processes import segment_numbers
from tests.support.servers import live_server

API = "/api/audio-driven/chunked"


@contextlib.contextmanager
def probe_server(tmp_path: Path, **overrides):
    settings = Settings(**({"storage_dir": tmp_path / "sessions", "static_dir": None} | overrides))
    app = create_app(settings, engine=ProbeEngine())
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client, settings.storage_dir, app


@pytest.fixture(scope="module")
def speech(sample_speech_path: Path) -> tuple[np.ndarray, int]:
    pcm, rate = sf.read(sample_speech_path, dtype="float32")
    return pcm, rate


def _segments(client: httpx.Client, sid: str) -> int:
    return max(segment_numbers(client.get(f"/hls/{sid}/playlist.m3u8").text) or [0])


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["ll", "ts"])
def test_pause_keeps_segments_flowing_and_frames_stay_locked_to_audio(
    tmp_path, speech, sample_face_path, mode
):
    pcm, rate = speech
    a, b = pcm[: rate * 2], pcm[rate * 4 : rate * 6]
    with probe_server(tmp_path, keep_all_segments=True, hls_mode=mode) as (client, storage, app):
        sid = init_session(client, sample_face_path.read_bytes(), chunk_duration=0.5)["session_id"]
        time.sleep(0.3)
        r1 = feed(client, sid, wav_bytes(a, rate)).json()
        time.sleep(2.0)
        seen_before = _segments(client, sid)
        time.sleep(3.0)  # speech ended ~1.5 s ago: a pause of several seconds
        seen_after = _segments(client, sid)
        assert seen_after >= seen_before + 2  # idle segments keep flowing in the pause
        r2 = feed(client, sid, wav_bytes(b, rate), final=True).json()
        st = wait_status(client, sid, "complete", 15)
        assert st["status"] == "complete"
        dec = Decoded(session_media(storage / sid, tmp_path / "s.ts"), with_frames=True)
        contexts = app.state.registry.engine.streams[0].contexts
    # the AudioChunkBuffer's windows reach the engine with 20 % of a 0.5 s window as context
    assert contexts[0] == 0 and len(contexts) >= 4 and set(contexts[1:]) == {1600}
    # after the 0.3 s pre-roll (emitted at once, possibly before the engine rendered it: the avatar's
    # still image or a repeat) every tick is a distinct frame in order: no stall, skip or duplicate
    pre = round(0.3 * 25)
    assert dec.indices[pre:] == list(range(pre, dec.frames))
    assert all(i is None or i < pre for i in dec.indices[:pre])
    audio = dec.audio_at(16000)
    for chunk, res in ((a, r1), (b, r2)):
        offset, peak = find_in(chunk, audio, 16000)
        assert abs(offset - res["scheduled_start_seconds"]) <= 0.003 and peak > 0.95
    # A/V lock per frame: the probe paints each frame as bright as its timeline audio is loud, so
    # picture brightness and the HLS audio's per-frame loudness must line up at lag 0, after the pause too
    n = min(dec.frames, len(audio) // 640)
    loud = np.sqrt((audio[: n * 640].reshape(n, 640).astype(np.float64) ** 2).mean(axis=1))
    bright = np.asarray(dec.levels[:n])
    late = slice(r2["scheduled_start_frame"] - 10, n)
    for part in (slice(0, n), late):
        x, y = loud[part] - loud[part].mean(), bright[part] - bright[part].mean()
        lags = {k: _corr_at(x, y, k) for k in range(-3, 4)}
        assert max(lags, key=lags.get) == 0 and lags[0] > 0.9, lags


def _corr_at(x: np.ndarray, y: np.ndarray, k: int) -> float:
    """Correlation of x[i + k] with y[i] (k > 0: the picture leads the sound by k frames)."""
    if k >= 0:
        return float(np.corrcoef(x[k:], y[: len(y) - k])[0, 1])
    return float(np.corrcoef(x[:k], y[-k:])[0, 1])


def test_capacity_is_503_with_retry_after(tmp_path, sample_face_path):
    with probe_server(tmp_path, max_sessions=1) as (client, _, _):
        face = sample_face_path.read_bytes()
        init_session(client, face)
        r = client.post(f"{API}/init", files={"image": ("f.jpg", face)})
        assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1
        assert r.json()["status"] == "error" and "capacity" in r.json()["message"]


def test_queue_bound_is_429_and_keeps_what_was_accepted(tmp_path, speech, sample_face_path):
    pcm, rate = speech
    with probe_server(tmp_path, max_queued_speech_s=2.0) as (client, _, _):
        sid = init_session(client, sample_face_path.read_bytes(), chunk_duration=0.5)["session_id"]
        assert feed(client, sid, wav_bytes(pcm[: int(rate * 1.5)], rate)).status_code == 200
        r = feed(client, sid, wav_bytes(pcm[:rate], rate))
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1, r.text
        st = client.get(f"{API}/status/{sid}").json()
        assert st["speech_seconds_accepted"] == pytest.approx(1.5, abs=0.01)
        time.sleep(1.5)
        assert feed(client, sid, wav_bytes(pcm[:rate], rate)).status_code == 200  # room again


def test_feed_after_final_is_409_and_delete_releases_everything(tmp_path, speech, sample_face_path):
    pcm, rate = speech
    with probe_server(tmp_path) as (client, storage, app):
        sid = init_session(client, sample_face_path.read_bytes())["session_id"]
        session = app.state.registry.get(sid)
        pid = session._sink.pid
        assert feed(client, sid, wav_bytes(pcm[: rate // 2], rate), final=True).status_code == 200
        r = feed(client, sid, wav_bytes(pcm[: rate // 2], rate))
        assert r.status_code == 409 and "no longer accepts" in r.json()["message"]
        assert client.delete(f"{API}/session/{sid}").json()["status"] == "success"
        assert not (storage / sid).exists()
        assert client.get(f"{API}/status/{sid}").status_code == 404
        assert client.get(f"/hls/{sid}/playlist.m3u8").status_code == 404
        assert not _alive(pid)
        assert not any(t.name.startswith(f"clock-{sid[:8]}") and t.is_alive() for t in threading.enumerate())


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_idle_sessions_expire_and_release_their_files(tmp_path, sample_face_path):
    with probe_server(tmp_path, session_idle_timeout_s=1.0, sweep_interval_s=0.2) as (client, storage, _):
        sid = init_session(client, sample_face_path.read_bytes())["session_id"]
        assert (storage / sid).is_dir()
        time.sleep(1.8)
        assert client.get(f"{API}/status/{sid}").status_code == 404
        deadline = time.monotonic() + 5
        while (storage / sid).exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # released off the event loop: ffmpeg stopped, threads joined, files removed
        assert not (storage / sid).exists()


def test_graceful_shutdown_ends_every_playlist(tmp_path, sample_face_path):
    face = sample_face_path.read_bytes()
    with probe_server(tmp_path) as (client, storage, _):
        sids = [init_session(client, face)["session_id"] for _ in range(2)]
        time.sleep(1.3)
    for sid in sids:
        assert (storage / sid / "playlist.m3u8").read_text().rstrip().endswith("#EXT-X-ENDLIST")


def test_interrupt_drops_queued_speech_and_the_face_goes_idle(tmp_path, speech, sample_face_path):
    pcm, rate = speech
    with probe_server(tmp_path) as (client, _, app):
        sid = init_session(client, sample_face_path.read_bytes())["session_id"]
        feed(client, sid, wav_bytes(pcm[: rate * 4], rate))
        time.sleep(1.0)
        session = app.state.registry.get(sid)
        dropped = session.interrupt()
        assert 2.0 < dropped < 3.9
        time.sleep(0.6)
        assert client.get(f"{API}/status/{sid}").json()["queued_speech_seconds"] == 0
        r = feed(client, sid, wav_bytes(pcm[: rate // 2], rate))  # later speech plays normally
        assert r.status_code == 200 and r.json()["scheduled_start_frame"] >= session.playhead


def test_storage_left_by_an_earlier_run_is_cleaned(tmp_path):
    stale = tmp_path / "sessions" / ("a" * 32)
    stale.mkdir(parents=True)
    keep = tmp_path / "sessions" / "not-a-session"
    keep.mkdir()
    with probe_server(tmp_path):
        assert not stale.exists() and keep.exists()
    os.rmdir(keep)


def test_static_page_is_served_at_the_root_without_shadowing_the_api(tmp_path):
    static = tmp_path / "static"
    static.mkdir()
    (static / "index.html").write_text("<!doctype html><title>facestream</title>")
    with probe_server(tmp_path, static_dir=static) as (client, _, _):
        r = client.get("/")
        assert (
            r.status_code == 200
            and "facestream" in r.text
            and r.headers["content-type"].startswith("text/html")
        )
        assert client.get("/health").json()["status"] == "ok"
        assert client.get(f"{API}/status/{'a' * 32}").status_code == 404


def test_debug_barcode_mode_logs_frame_hand_off_times(tmp_path, sample_face_path):
    with probe_server(tmp_path, debug_barcode=True) as (client, _, _):
        sid = init_session(client, sample_face_path.read_bytes())["session_id"]
        time.sleep(0.5)
        frames = client.get(f"/api/debug/sessions/{sid}/frame-times").json()["frames"]
        indices = [i for i, _ in frames]
        assert len(frames) >= 10 and indices == list(range(len(indices)))
        assert all(b[1] >= a[1] for a, b in itertools.pairwise(frames))
    with probe_server(tmp_path / "off") as (client, _, _):
        assert client.get("/api/debug/clock").status_code == 404


class _BrokenEngine(ProbeEngine):
    """A probe engine whose streams fail on their 20th push (an engine bug, a lost GPU…)."""

    def open_stream(self, avatar, params):
        stream = super().open_stream(avatar, params)
        push, calls = stream.push_audio, [0]

        def failing_push(pcm, context=None):
            calls[0] += 1
            if calls[0] >= 20:
                raise RuntimeError("synthetic engine fault")
            return push(pcm, context)

        stream.push_audio = failing_push
        return stream


def test_an_engine_fault_fails_the_session_and_ends_its_playlist(tmp_path, sample_face_path):
    settings = Settings(storage_dir=tmp_path / "sessions", static_dir=None)
    app = create_app(settings, engine=_BrokenEngine())
    with live_server(app) as url, httpx.Client(base_url=url) as client:
        sid = init_session(client, sample_face_path.read_bytes())["session_id"]
        st = wait_status(client, sid, "failed", 10)
        assert st["status"] == "failed" and "synthetic engine fault" in st["error"]
        deadline, text = time.monotonic() + 10, ""
        while not text.rstrip().endswith("#EXT-X-ENDLIST") and time.monotonic() < deadline:
            time.sleep(0.1)  # the failed session's encoder flushes its last segment, then the list ends
            r = client.get(f"/hls/{sid}/playlist.m3u8")
            text = r.text if r.status_code == 200 else ""
        assert text.rstrip().endswith("#EXT-X-ENDLIST"), text  # viewers are told the stream is over
        assert feed(client, sid, b"\x00\x00" * 100).status_code == 409
        assert client.get("/health").json()["live_sessions"] == 0


@pytest.mark.parametrize("mode", ["ll", "ts"])
def test_the_live_window_bounds_segments_on_disk(tmp_path, sample_face_path, mode):
    with probe_server(
        tmp_path, live_window_segments=2, recording_max_seconds=0, hls_mode=mode
    ) as (client, storage, _):
        sid = init_session(client, sample_face_path.read_bytes())["session_id"]
        time.sleep(5.5)
        playlist = client.get(f"/hls/{sid}/playlist.m3u8").text
        on_disk = sorted(p.name for p in (storage / sid).glob("seg_*"))
    listed = segment_numbers(playlist)
    assert len(listed) == 2 and listed[-1] >= 4
    first = "seg_00001.ts" if mode == "ts" else "seg_1.m4s"
    assert len(on_disk) <= 4 and first not in on_disk  # old files deleted, not just unlisted


def test_metrics_are_exposed_for_prometheus(tmp_path, sample_face_path):
    with probe_server(tmp_path) as (client, _, _):
        init_session(client, sample_face_path.read_bytes())
        time.sleep(0.5)
        r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    values = {
        line.split()[0]: float(line.split()[1])
        for line in r.text.splitlines()
        if line and not line.startswith("#")
    }
    assert values["facestream_live_sessions"] == 1 and values["facestream_ticks_total"] >= 10
