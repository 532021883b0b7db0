"""Faults on a real uvicorn with real ffmpeg, in both HLS modes (LL-HLS, the default, and TS): the
encoder killed mid-session or stopped (SIGSTOP) (restarted behind a discontinuity, capped), one
session's engine raising, unusable or full storage, a client vanishing mid-upload. Each case: the
playlist ends, the other session keeps streaming and nothing leaks."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.support.api import init_session, wait_status
from tests.support.engines import ProbeEngine
from tests.support.processes import (
    ffmpeg_children,
    last_segment,
    metric_values,
    probe_app,
    segment_numbers,
    session_threads,
    wait_until,
)

API = "/api/audio-driven/chunked"
FORM = "Content-Type: multipart/form-data; boundary=zz\r\n"
BOTH_MODES = pytest.mark.parametrize("mode", ["ll", "ts"])


def _sink(app, sid: str):
    return app.state.registry.get(sid)._sink


def _ended(client, sid: str) -> bool:
    r = client.get(f"/hls/{sid}/playlist.m3u8")
    return r.status_code == 200 and r.text.rstrip().endswith("#EXT-X-ENDLIST")


def _gone(pid: int) -> bool:
    """The process no longer exists (killed and reaped, not a zombie or a stopped leftover)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] in "ZX"


@BOTH_MODES
def test_a_killed_encoder_is_restarted_behind_a_discontinuity_and_the_other_session_streams_on(
    tmp_path, sample_face_path, mode
) -> None:
    face = sample_face_path.read_bytes()
    with probe_app(tmp_path, max_sink_restarts=2, hls_mode=mode) as (client, _, app):
        victim = init_session(client, face)["session_id"]
        other = init_session(client, face)["session_id"]
        assert wait_until(lambda: last_segment(client, victim) >= 2, 10)
        for restart in (1, 2):
            pid = _sink(app, victim).pid
            os.kill(pid, signal.SIGKILL)
            assert wait_until(lambda p=pid: _sink(app, victim).pid not in (None, p), 10)
            before = last_segment(client, victim)
            assert wait_until(lambda b=before: last_segment(client, victim) >= b + 2, 10)
            assert client.get(f"{API}/status/{victim}").json()["status"] == "streaming"
            assert _sink(app, victim).restarts == restart
        playlist = client.get(f"/hls/{victim}/playlist.m3u8").text
        assert playlist.count("#EXT-X-DISCONTINUITY\n") >= 1  # the live window may hide the first one
        numbers = segment_numbers(playlist)
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # numbering continues
        assert metric_values(client.get("/metrics").text)["facestream_ffmpeg_restarts_total"] == 2
        # the cap: a third death ends the session cleanly, with its playlist closed
        pid = _sink(app, victim).pid
        os.kill(pid, signal.SIGKILL)
        st = wait_status(client, victim, "failed", 10)
        assert st["status"] == "failed" and "encoder died after 2 restart(s)" in st["error"]
        assert _ended(client, victim)
        assert wait_until(lambda: not session_threads(victim), 5), session_threads(victim)
        assert len(ffmpeg_children()) == 1  # only the other session's encoder is left
        before = last_segment(client, other)
        assert wait_until(lambda: last_segment(client, other) >= before + 2, 10)
        assert client.get(f"{API}/status/{other}").json()["status"] == "streaming"
        assert client.get("/ready").status_code == 200
    assert not ffmpeg_children()


@BOTH_MODES
def test_a_stopped_encoder_is_detected_replaced_and_at_the_cap_the_session_fails_cleanly(
    tmp_path, sample_face_path, mode
) -> None:
    """SIGSTOP: ffmpeg is alive but takes nothing. Its queue fills and the tick write times out
    (~2.5 s); the writer is killed (a stopped process dies on SIGKILL) and replaced."""
    face = sample_face_path.read_bytes()
    with probe_app(tmp_path, max_sink_restarts=1, hls_mode=mode) as (client, _, app):
        victim = init_session(client, face)["session_id"]
        other = init_session(client, face)["session_id"]
        assert wait_until(lambda: last_segment(client, victim) >= 2, 10)
        stopped = _sink(app, victim).pid
        os.kill(stopped, signal.SIGSTOP)
        t0 = time.monotonic()
        assert wait_until(lambda: _sink(app, victim).pid not in (None, stopped), 15)
        detected = time.monotonic() - t0
        assert detected < 8, f"a stopped encoder took {detected:.1f} s to be replaced"
        assert _gone(stopped) and _sink(app, victim).stalls == 1
        before = last_segment(client, victim)
        assert wait_until(lambda b=before: last_segment(client, victim) >= b + 2, 10)
        assert client.get(f"{API}/status/{victim}").json()["status"] == "streaming"
        assert "#EXT-X-DISCONTINUITY\n" in client.get(f"/hls/{victim}/playlist.m3u8").text
        # the cap (1 restart): a second stop fails the session, kills the encoder, ends the playlist
        stopped = _sink(app, victim).pid
        os.kill(stopped, signal.SIGSTOP)
        st = wait_status(client, victim, "failed", 15)
        assert "encoder stalled" in st["error"] and "after 1 restart(s)" in st["error"], st
        assert _ended(client, victim) and _gone(stopped)
        assert wait_until(lambda: not session_threads(victim), 5), session_threads(victim)
        assert len(ffmpeg_children()) == 1
        before = last_segment(client, other)
        assert wait_until(lambda: last_segment(client, other) >= before + 2, 10)
        assert client.get(f"{API}/status/{other}").json()["status"] == "streaming"
    assert not ffmpeg_children()


class _OneBadStreamEngine(ProbeEngine):
    """The first stream opened raises on its 15th push; the others are healthy."""

    def open_stream(self, avatar, params):
        stream = super().open_stream(avatar, params)
        if len(self.streams) == 1:
            push, calls = stream.push_audio, [0]

            def failing_push(pcm, context=None):
                calls[0] += 1
                if calls[0] >= 15:
                    raise FloatingPointError("synthetic fault in one window")
                return push(pcm, context)

            stream.push_audio = failing_push
        return stream


@BOTH_MODES
def test_an_engine_exception_fails_only_its_own_session(tmp_path, sample_face_path, mode) -> None:
    face = sample_face_path.read_bytes()
    with probe_app(tmp_path, engine=_OneBadStreamEngine(), hls_mode=mode) as (client, settings, _):
        bad = init_session(client, face)["session_id"]
        good = init_session(client, face)["session_id"]
        st = wait_status(client, bad, "failed", 10)
        assert "synthetic fault in one window" in st["error"]
        assert wait_until(lambda: _ended(client, bad), 10)
        assert wait_until(lambda: len(ffmpeg_children()) == 1, 10)
        assert wait_until(lambda: not session_threads(bad), 5)
        before = last_segment(client, good)
        assert wait_until(lambda: last_segment(client, good) >= before + 2, 10)
        assert client.get(f"{API}/status/{good}").json()["status"] == "streaming"
        assert client.delete(f"{API}/session/{bad}").status_code == 200
        assert not (settings.storage_dir / bad).exists()  # deleting a failed session removes its files


def test_unusable_storage_is_a_507_not_a_500_and_nothing_is_left_behind(tmp_path, sample_face_path) -> None:
    face = sample_face_path.read_bytes()
    with probe_app(tmp_path) as (client, settings, _):
        live = init_session(client, face)["session_id"]
        children = ffmpeg_children()
        # storage replaced by a plain file (a lost mount, a full or read-only volume behaves alike)
        moved = settings.storage_dir.with_name("moved")
        settings.storage_dir.rename(moved)
        settings.storage_dir.write_bytes(b"not a directory")
        try:
            r = client.post(f"{API}/init", files={"image": ("f.jpg", face, "image/jpeg")})
            assert r.status_code == 507 and "storage is unavailable" in r.json()["message"], r.text
            # the refused init started no encoder. The live session's own writer may have been
            # replaced meanwhile (its directory moved away under it: an LL writer notices at its
            # next part and restarts), so count encoders rather than compare their pids
            assert len(ffmpeg_children()) <= len(children)
            assert client.get("/health").json()["live_sessions"] == 1
        finally:
            settings.storage_dir.unlink()
            moved.rename(settings.storage_dir)
        assert client.get(f"{API}/status/{live}").json()["status"] == "streaming"
        r = client.post(f"{API}/init", files={"image": ("f.jpg", face, "image/jpeg")})
        assert r.status_code == 200  # recovers once storage is back
        metrics = metric_values(client.get("/metrics").text)
        assert (
            metrics['facestream_request_errors_total{route="/api/audio-driven/chunked/init",status="507"}']
            == 1
        )


@BOTH_MODES
def test_a_client_vanishing_mid_upload_costs_nothing(tmp_path, sample_face_path, mode) -> None:
    face = sample_face_path.read_bytes()
    with probe_app(tmp_path, hls_mode=mode) as (client, settings, _):
        live = init_session(client, face)["session_id"]
        children = ffmpeg_children()
        u = urlparse(str(client.base_url))
        body = (
            b'--zz\r\nContent-Disposition: form-data; name="image"; filename="f.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n" + face[: len(face) // 2]
        )
        for _ in range(3):
            with socket.create_connection((u.hostname, u.port), timeout=5) as s:
                s.sendall(
                    f"POST {API}/init HTTP/1.1\r\nHost: x\r\n{FORM}"
                    f"Content-Length: {len(face) * 2}\r\n\r\n".encode()
                    + body
                )
                time.sleep(0.2)
            # and one that vanishes mid-feed
            with socket.create_connection((u.hostname, u.port), timeout=5) as s:
                s.sendall(
                    f"POST {API}/feed HTTP/1.1\r\nHost: x\r\n{FORM}"
                    f"Content-Length: 100000\r\n\r\n--zz\r\n".encode()
                )
        time.sleep(0.5)
        assert client.get("/health").json()["live_sessions"] == 1
        assert ffmpeg_children() == children
        assert sorted(p.name for p in settings.storage_dir.iterdir()) == [live]
        before = last_segment(client, live)
        assert wait_until(lambda: last_segment(client, live) >= before + 1, 5)
        metrics = metric_values(client.get("/metrics").text)
        assert not any('status="500"' in k for k in metrics)
    assert not ffmpeg_children()
    shutil.rmtree(tmp_path / "sessions", ignore_errors=True)


def _mount_tmpfs(path, size: str) -> bool:
    path.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
        )
    except OSError:
        return False
    return done.returncode == 0


@pytest.mark.slow
@BOTH_MODES
def test_a_full_disk_fails_sessions_cleanly_and_refuses_new_ones_with_507(
    tmp_path, sample_face_path, mode
) -> None:
    volume = tmp_path / "volume"
    if not _mount_tmpfs(volume, "8m"):
        pytest.skip("cannot mount a small tmpfs here (needs root / CAP_SYS_ADMIN)")
    face = sample_face_path.read_bytes()
    try:
        with probe_app(
            tmp_path, storage_dir=volume / "sessions", min_free_storage_mb=1, max_sink_restarts=1,
            hls_mode=mode,
        ) as (client, settings, _):  # fmt: skip
            sid = init_session(client, face)["session_id"]
            assert wait_until(lambda: last_segment(client, sid) >= 1, 10)
            assert client.get("/ready").status_code == 200
            filler = volume / "filler"
            with filler.open("wb") as f, contextlib.suppress(OSError):  # fill the volume to the last byte
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            st = wait_status(client, sid, "failed", 30)  # restarted once, then failed
            # TS: ffmpeg lives on but publishes nothing; LL: the archive's write fails at once
            why = "no segment published" if mode == "ts" else "No space left on device"
            assert st["status"] == "failed" and why in st["error"], st
            assert _ended(client, sid)  # players are told the stream is over
            assert wait_until(lambda: not ffmpeg_children(), 5) and wait_until(
                lambda: not session_threads(sid), 5
            )
            r = client.post(f"{API}/init", files={"image": ("f.jpg", face, "image/jpeg")})
            assert r.status_code == 507 and "MiB free" in r.json()["message"], r.text
            ready = client.get("/ready")
            assert ready.status_code == 503 and "storage" in ready.json()["reason"]
            filler.unlink()  # space back: the server recovers without a restart
            assert client.get("/ready").status_code == 200
            fresh = init_session(client, face)["session_id"]
            assert wait_until(lambda: last_segment(client, fresh) >= 1, 10)
            assert client.delete(f"{API}/session/{sid}").status_code == 200
            assert not (settings.storage_dir / sid).exists()
    finally:
        subprocess.run(["umount", "-l", str(volume)], check=False)
    assert not ffmpeg_children()
