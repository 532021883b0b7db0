"""The renderer moves what users see: landmarks re-detected on rendered frames follow the motion.

Every check re-runs MediaPipe on the output image (no trust in the renderer's own vertices), on
the sample portrait and on a different framing of it (mirrored, rescaled, grayscale), so nothing
depends on one face's pixel positions.
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from models.face import FaceAnalyzer, FaceLandmarker
from models.face.landmarks import FaceBox
from models.face.measure import (
    eye_aspect_ratios,
    gaze_proxy,
    head_pitch_proxy,
    head_yaw_proxy,
    mouth_opening,
)
from models.render import FaceRenderer
from models.types import MotionFrame


@pytest.fixture(scope="module")
def landmarker() -> FaceLandmarker:
    return FaceLandmarker()


def _variant(rgb: np.ndarray, kind: str) -> np.ndarray:
    if kind == "sample":
        return rgb
    gray = cv2.cvtColor(rgb[:, ::-1], cv2.COLOR_RGB2GRAY)
    small = cv2.resize(gray, None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(np.repeat(small[:, :, None], 3, axis=2))


@pytest.fixture(scope="module", params=["sample", "mirrored-gray-small"])
def rig(request, sample_face_path, landmarker):
    rgb = np.asarray(Image.open(sample_face_path).convert("RGB"))
    analysis = FaceAnalyzer(landmarker=landmarker).analyze(_variant(rgb, request.param))
    renderer = FaceRenderer(analysis.image, analysis.landmarks)
    lo = analysis.landmarks[:, :2].min(axis=0)
    hi = analysis.landmarks[:, :2].max(axis=0)
    box = FaceBox(float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]), 1.0)

    def measure(motion: MotionFrame) -> np.ndarray:
        lms = landmarker.mesh(renderer.render(motion), box)
        assert lms is not None, f"face lost in the rendered frame for {motion}"
        return lms

    return renderer, measure


def test_mouth_opening_grows_with_jaw_open(rig):
    _, measure = rig
    openings = [mouth_opening(measure(MotionFrame(0, jaw_open=j))) for j in (0.0, 0.3, 0.6, 1.0)]
    assert openings[0] < 0.04
    assert all(b > a + 0.03 for a, b in itertools.pairwise(openings)), openings
    assert 0.15 < openings[-1] < 0.6, openings


def test_lip_width_and_press(rig):
    _, measure = rig

    def width(lms: np.ndarray) -> float:
        return float(np.linalg.norm(lms[61, :2] - lms[291, :2]))

    round_ = width(measure(MotionFrame(0, jaw_open=0.3, mouth_width=-1.0)))
    spread = width(measure(MotionFrame(0, jaw_open=0.3, mouth_width=1.0)))
    neutral = width(measure(MotionFrame(0, jaw_open=0.3)))
    assert round_ < neutral * 0.93 and spread > neutral * 1.03, (round_, neutral, spread)
    pressed = mouth_opening(measure(MotionFrame(0, jaw_open=0.3, lip_press=1.0)))
    assert pressed < mouth_opening(measure(MotionFrame(0, jaw_open=0.3))) * 0.6


def test_blink_closes_each_eye(rig):
    _, measure = rig
    open_r, open_l = eye_aspect_ratios(measure(MotionFrame(0)))
    shut_r, shut_l = eye_aspect_ratios(measure(MotionFrame(0, blink_left=1.0, blink_right=1.0)))
    assert shut_r < 0.7 * open_r and shut_l < 0.7 * open_l, (open_r, open_l, shut_r, shut_l)
    wink_r, wink_l = eye_aspect_ratios(measure(MotionFrame(0, blink_right=1.0)))
    assert wink_r < 0.7 * open_r and wink_l > 0.85 * open_l, (wink_r, wink_l)


def test_yaw_and_pitch_turn_the_head_the_right_way(rig):
    _, measure = rig
    neutral = measure(MotionFrame(0))
    right = measure(MotionFrame(0, yaw=20.0))
    left = measure(MotionFrame(0, yaw=-20.0))
    assert head_yaw_proxy(right) > head_yaw_proxy(neutral) + 0.04
    assert head_yaw_proxy(left) < head_yaw_proxy(neutral) - 0.04
    down = measure(MotionFrame(0, pitch=15.0))
    up = measure(MotionFrame(0, pitch=-15.0))
    assert head_pitch_proxy(down) > head_pitch_proxy(neutral) + 0.02
    assert head_pitch_proxy(up) < head_pitch_proxy(neutral) - 0.02


def test_roll_tilts_the_eye_line_clockwise(rig):
    _, measure = rig

    def eye_angle(lms: np.ndarray) -> float:
        d = lms[263, :2] - lms[33, :2]
        return float(np.degrees(np.arctan2(d[1], d[0])))

    assert eye_angle(measure(MotionFrame(0, roll=10.0))) > eye_angle(measure(MotionFrame(0))) + 4.0


def test_gaze_moves_the_iris_inside_the_eye(rig):
    _, measure = rig
    centre = gaze_proxy(measure(MotionFrame(0)))
    right = gaze_proxy(measure(MotionFrame(0, gaze_x=1.0)))
    left = gaze_proxy(measure(MotionFrame(0, gaze_x=-1.0)))
    assert right > centre + 0.02 and left < centre - 0.02, (left, centre, right)
    assert left > 0.15 and right < 0.85, "iris must stay inside the eye opening"


def test_render_is_deterministic_and_leaves_the_background(rig):
    renderer, _ = rig
    motion = MotionFrame(7, jaw_open=0.6, mouth_width=-0.4, blink_left=0.7, yaw=8.0, pitch=-4.0, gaze_x=0.5)
    a = renderer.render(motion)
    b = renderer.render(motion)
    assert a.dtype == np.uint8 and a.shape == renderer.image.shape and a.flags.c_contiguous
    np.testing.assert_array_equal(a, b)
    neutral = renderer.render(MotionFrame(0))
    diff = np.abs(neutral.astype(int) - renderer.image.astype(int))
    assert diff.max() <= 2, "the neutral frame must reproduce the avatar"
    roi = renderer.field.roi
    outside = np.ones(a.shape[:2], bool)
    outside[roi.y0 : roi.y1, roi.x0 : roi.x1] = False
    np.testing.assert_array_equal(a[outside], renderer.image[outside])


def test_open_mouthed_photo_closes_at_rest_and_still_opens(sample_face_path, landmarker):
    """A portrait taken mid-speech (here: one of our own rendered open-mouth frames, re-analysed
    from scratch) must rest with closed lips in silence and open again with jaw_open."""
    rgb = np.asarray(Image.open(sample_face_path).convert("RGB"))
    analyzer = FaceAnalyzer(landmarker=landmarker)
    first = analyzer.analyze(rgb)
    open_photo = FaceRenderer(first.image, first.landmarks).render(MotionFrame(0, jaw_open=0.8))
    analysis = analyzer.analyze(open_photo)
    assert mouth_opening(analysis.landmarks) > 0.12, "the new source should show an open mouth"
    renderer = FaceRenderer(analysis.image, analysis.landmarks)
    lo = analysis.landmarks[:, :2].min(axis=0)
    hi = analysis.landmarks[:, :2].max(axis=0)
    box = FaceBox(float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]), 1.0)
    rest, half, wide = (
        mouth_opening(landmarker.mesh(renderer.render(MotionFrame(0, jaw_open=j)), box))
        for j in (0.0, 0.5, 1.0)
    )
    assert rest < 0.06, "silence must show closed lips"
    assert rest + 0.05 < half < wide - 0.05, (rest, half, wide)
    assert wide > 0.2, "jaw_open=1 is the widest speech opening, whatever the photo"


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.lists(
        st.one_of(st.floats(-100, 100), st.just(float("nan")), st.just(float("inf"))),
        min_size=11,
        max_size=11,
    )
)
def test_any_motion_values_give_a_valid_frame(rig, values):
    """Out-of-range, NaN and infinite motion never crash or leak into the image."""
    renderer, _ = rig
    names = ("jaw_open", "mouth_width", "lip_press", "speech", "blink_left", "blink_right")
    names += ("pitch", "yaw", "roll", "gaze_x", "gaze_y")
    frame = renderer.render(MotionFrame(0, **dict(zip(names, values, strict=True))))
    assert frame.shape == renderer.image.shape and frame.dtype == np.uint8
