"""Idle motion: seeded blinks, head drift and nods, saccades, and the session's pose/gaze style."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from models.motion import MotionStream
from models.types import FPS, EngineParams, MotionFrame

SR = 16_000


def motion(audio: np.ndarray, **params) -> list[MotionFrame]:
    stream = MotionStream(EngineParams(**params))
    return stream.push_audio(audio) + stream.flush()


def column(frames: list[MotionFrame], name: str) -> np.ndarray:
    return np.array([getattr(f, name) for f in frames])


def blink_events(lid: np.ndarray, threshold: float = 0.5) -> list[tuple[int, int]]:
    """(first, last) frame of each stretch with the lid more than half closed."""
    closed = np.flatnonzero(lid > threshold)
    if not len(closed):
        return []
    breaks = np.flatnonzero(np.diff(closed) > 1)
    starts = np.r_[closed[0], closed[breaks + 1]]
    ends = np.r_[closed[breaks], closed[-1]]
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


SILENCE_60S = np.zeros(60 * SR, np.float32)


@pytest.fixture(scope="module")
def idle_by_seed() -> dict[int, list[MotionFrame]]:
    return {seed: motion(SILENCE_60S, seed=seed) for seed in (1, 2, 3, 4, 5)}


def test_blinks_happen_in_silence_at_natural_intervals(idle_by_seed):
    doubles = 0
    for frames in idle_by_seed.values():
        left, right = column(frames, "blink_left"), column(frames, "blink_right")
        assert column(frames, "jaw_open").max() == 0.0
        events = blink_events(left)
        assert 60 / 6.5 <= len(events) <= 60 / 1.8 * 1.2
        both = blink_events(right)  # both eyes blink together (depths differ slightly)
        assert len(both) == len(events)
        assert all(abs(a[0] - b[0]) <= 1 for a, b in zip(both, events, strict=True))
        starts = [s for s, _ in events]
        gaps = np.diff(starts) / FPS
        doubles += int((gaps < 0.5).sum())
        singles = gaps[gaps >= 0.5]
        assert singles.min() >= 1.8 and singles.max() <= 6.5
        assert len(set(np.round(singles, 2))) > len(singles) // 2  # irregular, not a metronome
        for s, _ in events:  # one blink: 4..6 frames (160..240 ms) from first movement to open again
            lo, hi = s, s
            while lo > 0 and left[lo - 1] > 0.02:
                lo -= 1
            while hi + 1 < len(left) and left[hi + 1] > 0.02:
                hi += 1
            assert 3 <= hi - lo + 1 <= 12  # a double blink spans two shapes
            assert left[lo : hi + 1].max() > 0.85
    assert doubles >= 1  # occasional double blinks across five minutes of idling


def test_head_moves_gently_and_smoothly_in_silence(idle_by_seed):
    for frames in idle_by_seed.values():
        for axis in ("pitch", "yaw", "roll"):
            angle = column(frames, axis)
            assert angle.std() > 0.1 and np.abs(angle).max() < 3.0, axis
            assert np.abs(np.diff(angle)).max() < 0.25, axis  # no jumps between frames
        gx, gy = column(frames, "gaze_x"), column(frames, "gaze_y")
        moves = int((np.abs(np.diff(gx)) + np.abs(np.diff(gy)) > 0.02).sum())
        assert moves >= 10  # saccades (each spans two frames)
        assert np.abs(gx).max() <= 0.35 + 1e-9 and np.abs(gy).max() <= 0.2 + 1e-9


def test_seed_decides_idle_motion(idle_by_seed):
    again = motion(SILENCE_60S, seed=1)
    assert again == idle_by_seed[1]
    one, two = idle_by_seed[1], idle_by_seed[2]
    assert blink_events(column(one, "blink_left")) != blink_events(column(two, "blink_left"))
    for axis in ("pitch", "yaw", "gaze_x"):
        assert np.abs(column(one, axis) - column(two, axis)).max() > 0.05


def test_pose_and_gaze_style_offset_every_frame(idle_by_seed):
    base = idle_by_seed[1][:500]
    styled = motion(SILENCE_60S[: 20 * SR], seed=1, pose_style=(5.0, -10.0, 3.0), gaze_style=(0.3, -0.2))
    assert len(styled) == 500
    np.testing.assert_allclose(column(styled, "pitch"), column(base, "pitch") + 5.0, atol=1e-9)
    np.testing.assert_allclose(column(styled, "yaw"), column(base, "yaw") - 10.0, atol=1e-9)
    np.testing.assert_allclose(column(styled, "roll"), column(base, "roll") + 3.0, atol=1e-9)
    np.testing.assert_allclose(column(styled, "gaze_x"), column(base, "gaze_x") + 0.3, atol=1e-9)
    np.testing.assert_allclose(column(styled, "gaze_y"), column(base, "gaze_y") - 0.2, atol=1e-9)
    extreme = motion(SILENCE_60S[: 4 * SR], gaze_style=(5.0, -5.0), pose_style=(90.0, 0.0, 0.0))
    assert all(f.gaze_x == 1.0 and f.gaze_y == -1.0 for f in extreme)  # clamped to the iris travel
    assert all(f.pitch == 45.0 for f in extreme)


def test_speech_adds_nods_only_while_speaking(sample_speech_path):
    speech, _ = sf.read(sample_speech_path, dtype="float32")
    audio = np.concatenate([np.zeros(2 * SR, np.float32), speech, np.zeros(4 * SR, np.float32)])
    talking = motion(audio, seed=9)
    idle = motion(np.zeros_like(audio), seed=9)
    nod = column(talking, "pitch") - column(idle, "pitch")
    speaking = column(talking, "speech") > 0.5
    assert np.abs(nod[: 2 * FPS]).max() == 0.0  # identical idle before the speech
    assert 0.3 < np.abs(nod[speaking]).max() < 4.0  # a visible, gentle nod
    assert column(talking, "blink_left").tolist() == column(idle, "blink_left").tolist()
