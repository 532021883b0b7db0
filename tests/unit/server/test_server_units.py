"""Small pure pieces of the server: ids and file names, form parsing, settings, state machine, engines."""

from __future__ import annotations

import pytest

from models.errors import EngineUnavailableError
from server.api.forms import parse_engine_params, parse_vector
from server.errors import InvalidFieldError, SessionNotFoundError, status_for
from server.session.frames import FrameQueue, LatenessStats
from server.session.ids import is_valid_hls_file, is_valid_session_id, new_session_id, validate_session_id
from server.session.state import SessionState, StateMachine
from server.settings import Settings


def test_session_ids_are_uuid4_hex_and_validated_strictly() -> None:
    sid = new_session_id()
    assert is_valid_session_id(sid) and validate_session_id(sid) == sid
    for bad in [
        "../x",
        sid.upper(),
        sid[:-1],
        sid + "0",
        f"{sid[:8]}-{sid[8:]}",
        "",
        sid[:-1] + "\x00",
        "g" * 32,
    ]:
        assert not is_valid_session_id(bad)
        with pytest.raises(SessionNotFoundError):
            validate_session_id(bad)


def test_hls_file_names_match_only_what_the_sink_writes() -> None:
    assert is_valid_hls_file("playlist.m3u8") and is_valid_hls_file("seg_00001.ts")
    for bad in [
        "../playlist.m3u8",
        "playlist.m3u8.tmp",
        "seg_1.ts",
        "seg_00001.ts.tmp",
        "SEG_00001.ts",
        "a.m3u8",
    ]:
        assert not is_valid_hls_file(bad)


def test_engine_params_defaults_and_ranges() -> None:
    p = parse_engine_params(None, None, None, None, None, None)
    assert (p.crop, p.seed, p.nfe, p.cfg_scale, p.pose_style, p.gaze_style) == (
        True,
        42,
        10,
        2.0,
        (0, 0, 0),
        (0, 0),
    )
    p = parse_engine_params("false", "7", "50", "5", "[1, -2.5, 3]", "[0.5, -0.25]")
    assert (p.crop, p.seed, p.nfe, p.cfg_scale, p.pose_style, p.gaze_style) == (
        False, 7, 50, 5.0, (1.0, -2.5, 3.0), (0.5, -0.25),
    )  # fmt: skip
    with pytest.raises(InvalidFieldError, match="gaze_style"):
        parse_vector("gaze_style", "[2, 0]", ("x", "y"), 1.0)
    with pytest.raises(InvalidFieldError, match="nfe must be between 5 and 50"):
        parse_engine_params(None, None, "4", None, None, None)


def test_status_mapping_is_in_one_place() -> None:
    from models.errors import ImageTooSmallError, InvalidAudioError, InvalidImageError, NoFaceFoundError
    from server.errors import CapacityError, PayloadTooLargeError, SessionFinishedError, SpeechQueueFullError

    assert status_for(SessionNotFoundError()) == 404
    assert status_for(InvalidImageError()) == 400 and status_for(InvalidAudioError()) == 400
    assert status_for(NoFaceFoundError()) == 422 and status_for(ImageTooSmallError()) == 422
    assert status_for(PayloadTooLargeError()) == 413 and status_for(SessionFinishedError()) == 409
    assert (
        status_for(SpeechQueueFullError("x", 0.2)) == 429 and SpeechQueueFullError("x", 0.2).retry_after == 1
    )
    assert status_for(CapacityError("x", 10)) == 503 and status_for(EngineUnavailableError()) == 503
    assert status_for(ValueError()) == 500


def test_settings_from_env_overridden_by_arguments(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("FACESTREAM_PORT", "8123")
    monkeypatch.setenv("FACESTREAM_MAX_SESSIONS", "3")
    s = Settings(storage_dir=tmp_path)
    assert s.port == 8123 and s.max_sessions == 3 and s.host == "127.0.0.1"
    assert Settings(port=9000, storage_dir=tmp_path).port == 9000
    monkeypatch.setenv("FACESTREAM_MAX_SESSIONS", "0")
    assert Settings(storage_dir=tmp_path).max_sessions >= 1  # derived from the CPU count
    with pytest.raises(ValueError):
        Settings(port=0)
    with pytest.raises(ValueError):
        Settings(segment_seconds=0.33)
    with pytest.raises(ValueError):
        Settings(engine="gpu-magic")
    monkeypatch.setenv("FACESTREAM_HLS_PRESET", "superfast")
    assert Settings(storage_dir=tmp_path).hls_preset == "superfast"
    with pytest.raises(ValueError, match="ultrafast"):  # a typo fails at start-up, naming the choices
        Settings(hls_preset="ultrafst")


def test_state_machine_enforces_the_lifecycle() -> None:
    sm = StateMachine()
    sm.to(SessionState.STREAMING)
    sm.to(SessionState.DRAINING)
    with pytest.raises(Exception, match="cannot go from draining to streaming"):
        sm.to(SessionState.STREAMING)
    sm.to(SessionState.COMPLETE)
    assert not sm.try_to(SessionState.FAILED) and sm.try_to(SessionState.CLOSED)
    assert sm.state.terminal and not sm.state.accepts_speech


def test_frame_queue_drops_frames_whose_tick_has_passed() -> None:
    import numpy as np

    from models.types import VideoFrame

    q = FrameQueue(capacity=4)
    img = np.zeros((2, 2, 3), np.uint8)
    assert q.put(VideoFrame(0, img)) and q.put(VideoFrame(1, img))
    assert q.take(1).index == 1 and len(q) == 0  # frame 0 forgotten
    assert not q.put(VideoFrame(1, img)) and q.dropped_late == 1
    stats = LatenessStats()
    for v in (-0.05, -0.01, 0.02):
        stats.add(v)
    s = stats.summary_ms()
    assert s["frames"] == 3 and s["late"] == 1 and s["max"] == 20.0


def test_engine_factory(tmp_path) -> None:
    from models.engines import create_engine

    assert create_engine("cpu").name == "cpu"
    with pytest.raises(EngineUnavailableError):
        create_engine("imtalker", weights_dir=tmp_path / "missing")
    with pytest.raises(EngineUnavailableError, match="unknown engine"):
        create_engine("nope")
