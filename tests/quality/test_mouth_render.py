"""The rendered mouth, re-measured: calm closed rest, no seams, the photo's own teeth, real closures.

Faces: the bundled sample (closed mouth, glasses) and scikit-image's astronaut (a teeth-showing
smile, tests/data/faces/astronaut.jpg). Lips are re-detected with MediaPipe on rendered frames,
for the speech check after an x264 round trip, as viewers see them.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from models.face import FaceAnalyzer, FaceLandmarker
from models.face import topology as topo
from models.face.landmarks import FaceBox
from models.face.measure import mouth_opening
from models.render import FaceRenderer
from models.types import MotionFrame
from tests.support.lipsync import CLOSED_GAP, align, espeak, espeak_available, score

ASTRONAUT = Path(__file__).resolve().parents[1] / "data" / "faces" / "astronaut.jpg"


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer()


@pytest.fixture(scope="module")
def smile(analyzer):
    analysis = analyzer.analyze(np.asarray(Image.open(ASTRONAUT).convert("RGB")))
    return analysis, FaceRenderer(analysis.image, analysis.landmarks)


@pytest.fixture(scope="module")
def closed(analyzer, sample_face_path):
    analysis = analyzer.analyze_bytes(sample_face_path.read_bytes())
    return analysis, FaceRenderer(analysis.image, analysis.landmarks)


def _box(landmarks: np.ndarray) -> FaceBox:
    lo, hi = landmarks[:, :2].min(axis=0), landmarks[:, :2].max(axis=0)
    return FaceBox(float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]), 1.0)


def _mask(shape: tuple[int, ...], points: np.ndarray, grow: int = 0) -> np.ndarray:
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.rint(points[:, :2]).astype(np.int32)], 255)
    if grow:
        mask = cv2.dilate(mask, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
    return mask > 0


def _lum(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def test_teeth_showing_smile_rests_as_a_closed_lip_smile_without_a_seam(smile):
    analysis, renderer = smile
    assert renderer.mouth.source_open and renderer.mouth.photo_teeth
    rest = renderer.render(MotionFrame(0))
    lms = FaceLandmarker().mesh(rest, _box(analysis.landmarks))
    assert lms is not None and mouth_opening(lms) < CLOSED_GAP, mouth_opening(lms)
    # where the photo showed teeth, the rest frame shows lip (no white seam, no dark cavity)
    inner = analysis.landmarks[list(topo.INNER_MOUTH_CONTOUR)]
    teeth = _mask(rest.shape, inner)
    lips = (
        _mask(rest.shape, analysis.landmarks[list(topo.UPPER_LIP_OUTER + topo.LOWER_LIP_OUTER[::-1])])
        & ~teeth
    )
    photo_teeth = float(np.percentile(_lum(analysis.image)[teeth], 90))
    lip = float(np.median(_lum(analysis.image)[lips]))
    # a seam, if any, runs along the lips' contact line as re-detected on the rest frame
    line = np.zeros(rest.shape[:2], np.uint8)
    cv2.polylines(line, [np.rint(lms[list(topo.UPPER_LIP_INNER), :2]).astype(np.int32)], False, 255, 1)
    along = _lum(rest)[line > 0]
    assert float(np.median(along)) < lip + 0.25 * (photo_teeth - lip), (np.median(along), lip, photo_teeth)
    assert float(np.percentile(along, 90)) < lip + 0.5 * (photo_teeth - lip), (np.percentile(along, 90), lip)
    assert float(np.percentile(along, 5)) > 0.45 * lip  # and no dark cavity either


def test_the_photo_teeth_are_reused_and_move_with_the_jaw(smile):
    """At the photo's own opening the interior *is* the photo's mouth; opened wider, the upper
    teeth stay under the upper lip and the lower teeth come down with the jaw."""
    analysis, renderer = smile
    gap = renderer.rig.mouth.source_gap_px / renderer.rig.mouth.drop_px
    as_photo = renderer.render(MotionFrame(0, jaw_open=gap))
    inner = _mask(as_photo.shape, analysis.landmarks[list(topo.INNER_MOUTH_CONTOUR)])
    diff = np.abs(as_photo.astype(np.float32) - analysis.image.astype(np.float32))[inner].mean()
    assert diff < 18.0, diff
    wide = renderer.render(MotionFrame(0, jaw_open=1.0))
    up_mid = analysis.landmarks[topo.INNER_LIP_MID[0], :2]
    x, y = int(up_mid[0]), int(up_mid[1])
    photo_incisor = _lum(analysis.image)[y + 2 : y + 6, x - 3 : x + 4].mean()
    rendered_incisor = _lum(wide)[y + 1 : y + 5, x - 3 : x + 4].mean()
    assert abs(photo_incisor - rendered_incisor) < 30.0, (photo_incisor, rendered_incisor)


def test_synthesized_teeth_are_shaded_not_a_flat_band(closed):
    analysis, renderer = closed
    assert not renderer.mouth.photo_teeth
    frame = renderer.render(MotionFrame(0, jaw_open=0.7))
    up = analysis.landmarks[list(topo.UPPER_LIP_INNER), :2]
    corners = analysis.landmarks[list(topo.MOUTH_CORNERS), :2]
    y = int(up[:, 1].max() + 0.03 * np.ptp(corners[:, 0]))
    xs = np.arange(int(corners[:, 0].min()) + 4, int(corners[:, 0].max()) - 4)
    row = _lum(frame)[y, xs]
    mid = len(row) // 2
    centre, sides = row[mid - 4 : mid + 5].mean(), np.r_[row[:6], row[-6:]].mean()
    assert centre > sides + 15.0, (centre, sides)  # lit in front, occluded towards the corners
    assert np.std(np.diff(row[mid - 20 : mid + 20])) > 1.0  # individual teeth, not one band


def test_interior_takes_the_photo_lighting_grayscale_stays_gray(analyzer, sample_face_path):
    rgb = np.asarray(Image.open(sample_face_path).convert("L").convert("RGB"))
    analysis = analyzer.analyze(rgb)
    renderer = FaceRenderer(analysis.image, analysis.landmarks)
    frame = renderer.render(MotionFrame(0, jaw_open=1.0)).astype(np.int16)
    mouth = _mask(
        frame.shape, analysis.landmarks[list(topo.UPPER_LIP_OUTER + topo.LOWER_LIP_OUTER[::-1])], grow=6
    )
    chroma = frame.max(axis=2) - frame.min(axis=2)
    assert np.percentile(chroma[mouth], 99) <= 14


@pytest.mark.skipif(not espeak_available(), reason="espeak-ng not installed (scripts/test.sh installs it)")
def test_rendered_and_encoded_lips_close_on_bilabials(ffmpeg):
    """Speech through the renderer and an x264 round trip; lips re-detected on decoded frames."""
    from models.engines.cpu import CpuEngine
    from models.types import EngineParams
    from tests.support.lipsync import x264_round_trip

    text = "Bob made a map. Mary baked me a pie."
    pcm = espeak(text, "en-us", 165, 50, lead_s=0.5)
    engine = CpuEngine()
    avatar = engine.prepare(np.asarray(Image.open(ASTRONAUT).convert("RGB")), EngineParams())
    stream = engine.open_stream(avatar, EngineParams())
    frames = stream.push_audio(pcm) + stream.flush()
    stream.close()
    decoded = x264_round_trip(ffmpeg, np.stack([f.image for f in frames]))
    landmarker = FaceLandmarker()
    box = _box(avatar.landmarks)
    gaps = []
    for img in decoded:
        lms = landmarker.mesh(np.ascontiguousarray(img), box)
        assert lms is not None
        gaps.append(mouth_opening(lms))
    s = score(np.array(gaps), pcm, align(pcm, text))
    print(s.line())
    assert s.n_bilabial >= 8
    assert s.bilabial >= 0.85 and s.open_vowel >= 0.9 and s.silence >= 0.95, s.line()
    assert s.r >= 0.7 and s.lag == 0, s.line()
