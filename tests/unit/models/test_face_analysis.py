"""Face analysis on real decoded images: formats, orientation, crops, limits and typed errors."""

from __future__ import annotations

import io
import struct
import threading
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from models.errors import ImageTooSmallError, InvalidImageError, NoFaceFoundError
from models.face import FaceAnalyzer, decode_image_bytes
from models.face import topology as topo
from models.face.measure import interocular


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer()


@pytest.fixture(scope="module")
def face_rgb(sample_face_path: Path) -> np.ndarray:
    return np.asarray(Image.open(sample_face_path).convert("RGB"))


def _encode(img: np.ndarray | Image.Image, fmt: str, **kw) -> bytes:
    pil = img if isinstance(img, Image.Image) else Image.fromarray(img)
    buf = io.BytesIO()
    pil.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _assert_upright_face(result, size: tuple[int, int] | None = None) -> None:
    h, w = result.image.shape[:2]
    assert result.image.dtype == np.uint8 and result.image.shape[2] == 3
    assert h % 2 == 0 and w % 2 == 0
    if size:
        assert (w, h) == size
    lms = result.landmarks
    assert lms.shape == (478, 3) and np.isfinite(lms).all()
    eyes_y = lms[list(topo.RIGHT_EYE_CONTOUR) + list(topo.LEFT_EYE_CONTOUR), 1].mean()
    assert eyes_y < lms[topo.NOSE_TIP, 1] < lms[topo.CHIN, 1], "face is not upright"
    assert lms[topo.RIGHT_EYE_CONTOUR[0], 0] < lms[topo.LEFT_EYE_CONTOUR[0], 0]
    assert (lms[:, 0] > -5).all() and (lms[:, 0] < w + 5).all()


def test_sample_crop_is_512_square_with_landmarks_on_the_face(analyzer, sample_face_path):
    result = analyzer.analyze_bytes(sample_face_path.read_bytes(), crop=True)
    _assert_upright_face(result, (512, 512))
    assert result.source_size == (512, 600)
    x0, y0, x1, y1 = result.crop_box
    assert x1 - x0 == y1 - y0
    iod = interocular(result.landmarks)
    assert 60 < iod < 160, "face should fill a head-and-shoulders crop"
    centre = result.landmarks[:, :2].mean(axis=0)
    assert np.all(np.abs(centre - 256) < 80)
    assert result.timings_ms["total"] > 0


def test_whole_image_mode_keeps_aspect_and_even_size(analyzer, face_rgb):
    result = analyzer.analyze(face_rgb, crop=False)
    h, w = result.image.shape[:2]
    assert max(h, w) <= 512 and h % 2 == 0 and w % 2 == 0
    assert abs(w / h - 512 / 600) < 0.01
    _assert_upright_face(result)
    assert result.crop_box == (0, 0, 512, 600)


def test_landmarks_follow_the_face_in_any_framing(analyzer, face_rgb):
    """Flipped, shifted, scaled and partly cut-off variants all yield an upright, centred crop."""
    base = analyzer.analyze(face_rgb).landmarks
    variants = {
        "flipped": face_rgb[:, ::-1],
        "shifted": cv2.copyMakeBorder(face_rgb, 0, 0, 300, 0, cv2.BORDER_REPLICATE),
        "scaled": cv2.resize(face_rgb, None, fx=0.55, fy=0.55, interpolation=cv2.INTER_AREA),
        "cut off": face_rgb[:, 150:],  # face near the left edge: the crop shrinks its margin
        "gray": np.repeat(cv2.cvtColor(face_rgb, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2),
    }
    for name, img in variants.items():
        result = analyzer.analyze(np.ascontiguousarray(img))
        _assert_upright_face(result, (512, 512))
        ratio = interocular(result.landmarks) / interocular(base)
        # a tight photo gets a tighter crop (less margin, never invented background), else the same
        top = 1.65 if name == "cut off" else 1.15
        assert 0.85 < ratio < top, f"{name}: crop scale differs ({ratio:.2f})"


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("empty", b""),
        ("random bytes", np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()),
        ("text", b"hello, this is not an image\n" * 40),
    ],
)
def test_non_images_are_invalid(analyzer, name, data):
    with pytest.raises(InvalidImageError):
        analyzer.analyze_bytes(data)


def test_truncated_jpeg_is_invalid(analyzer, sample_face_path):
    data = sample_face_path.read_bytes()
    with pytest.raises(InvalidImageError):
        analyzer.analyze_bytes(data[: len(data) // 3])


def _png_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_decompression_bomb_refused_from_header():
    with pytest.raises(InvalidImageError, match="pixels"):
        decode_image_bytes(_png_claiming(30_000, 30_000))
    with pytest.raises(InvalidImageError, match="pixels"):
        decode_image_bytes(_png_claiming(2000, 2000), max_pixels=1_000_000)


def test_no_face(analyzer, face_rgb):
    gradient = np.zeros((400, 400, 3), np.uint8)
    gradient[:, :, 0] = np.linspace(0, 255, 400)[None, :]
    gradient[:, :, 2] = np.linspace(255, 0, 400)[:, None]
    background = np.ascontiguousarray(face_rgb[:180, 330:])  # the flag/backdrop corner of the photo
    for img in (gradient, cv2.resize(background, (360, 360))):
        with pytest.raises(NoFaceFoundError):
            analyzer.analyze_bytes(_encode(img, "PNG"))


def test_tiny_image_and_tiny_face(analyzer, face_rgb):
    with pytest.raises(ImageTooSmallError):
        analyzer.analyze_bytes(_encode(cv2.resize(face_rgb, (40, 48)), "PNG"))
    small_face = cv2.resize(face_rgb, (52, 60), interpolation=cv2.INTER_AREA)  # face ~20 px
    canvas = np.full((400, 400, 3), 200, np.uint8)
    canvas[100:160, 100:152] = small_face
    with pytest.raises((ImageTooSmallError, NoFaceFoundError)):
        analyzer.analyze_bytes(_encode(canvas, "PNG"))


def test_formats_gray_rgba_palette_16bit(analyzer, face_rgb):
    gray = cv2.cvtColor(face_rgb, cv2.COLOR_RGB2GRAY)
    rgba = np.dstack([face_rgb, np.full(face_rgb.shape[:2], 255, np.uint8)])
    rgba[:40, :40, 3] = 0
    ok16, png16 = cv2.imencode(".png", gray.astype(np.uint16) * 257)
    assert ok16
    uploads = {
        "gray jpeg": _encode(gray, "JPEG", quality=90),
        "rgba png": _encode(rgba, "PNG"),
        "palette png": _encode(Image.fromarray(face_rgb).quantize(128), "PNG"),
        "16-bit png": png16.tobytes(),
        "webp": _encode(face_rgb, "WEBP"),
    }
    for name, data in uploads.items():
        result = analyzer.analyze_bytes(data)
        _assert_upright_face(result, (512, 512))
        assert result.source_size == (512, 600), name


def test_exif_rotated_jpeg_is_turned_upright(analyzer, face_rgb):
    stored = np.ascontiguousarray(np.rot90(face_rgb, 1))  # sideways pixels (rotated 90° CCW)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° CW to display
    data = _encode(stored, "JPEG", quality=92, exif=exif.tobytes())
    result = analyzer.analyze_bytes(data)
    assert result.source_size == (512, 600)
    _assert_upright_face(result, (512, 512))


def test_8000x6000_upload_is_downscaled_and_analysed(analyzer, face_rgb):
    big = cv2.resize(face_rgb, (5120, 6000), interpolation=cv2.INTER_LINEAR)
    canvas = cv2.copyMakeBorder(big, 0, 0, 1440, 1440, cv2.BORDER_REPLICATE)
    assert canvas.shape[:2] == (6000, 8000)
    data = _encode(canvas, "JPEG", quality=85)
    result = analyzer.analyze_bytes(data)
    _assert_upright_face(result, (512, 512))
    assert result.source_size == (8000, 6000)
    assert result.timings_ms["total"] < 8000
    with pytest.raises(InvalidImageError):
        FaceAnalyzer(max_pixels=40_000_000).analyze_bytes(data)


def test_concurrent_calls_match_sequential(analyzer, face_rgb):
    images = [face_rgb, np.ascontiguousarray(face_rgb[:, ::-1]), face_rgb[40:, 20:]]
    expected = [analyzer.analyze(np.ascontiguousarray(im)).landmarks for im in images]
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for _ in range(2):
                results[k] = analyzer.analyze(np.ascontiguousarray(images[k % 3])).landmarks
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,), name=f"analyze-{k}") for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    for k in range(6):
        np.testing.assert_allclose(results[k], expected[k % 3], atol=1e-3)


# --- any photo a user brings -------------------------------------------------------------------

ASTRONAUT = Path(__file__).resolve().parents[2] / "data" / "faces" / "astronaut.jpg"
"""scikit-image's bundled astronaut portrait (public domain, NASA), cropped: a teeth-showing smile
(regenerate with ``python benchmarks/eval_media.py --test-data``)."""


@pytest.fixture(scope="module")
def astronaut_rgb() -> np.ndarray:
    return np.asarray(Image.open(ASTRONAUT).convert("RGB"))


def _face_extent(result) -> tuple[np.ndarray, np.ndarray]:
    return result.landmarks[:, :2].min(axis=0), result.landmarks[:, :2].max(axis=0)


def test_photos_users_bring_are_all_animatable(analyzer, face_rgb, astronaut_rgb):
    """Grayscale scan at 940 px, a thumbnail, glasses, beard and moustache, a rotated photo, and a
    face that fills the whole frame (the detector alone misses it: detection retries padded)."""
    from tests.support.faces import grayscale, rotate, with_beard, with_glasses

    x0, y0, x1, y1 = analyzer.analyze(face_rgb).face_box
    tight = face_rgb[y0:y1, x0:x1]  # just the detector's own box: brows to mouth, no margin at all
    variants = {
        "gray 940": cv2.resize(grayscale(face_rgb), (940, 1100), interpolation=cv2.INTER_CUBIC),
        "thumbnail": cv2.resize(astronaut_rgb, (110, 110), interpolation=cv2.INTER_AREA),
        "glasses": with_glasses(astronaut_rgb),
        "beard": with_beard(astronaut_rgb),
        "rotated 15": rotate(face_rgb, 15.0),
        "face fills frame": np.ascontiguousarray(tight),
    }
    for name, img in variants.items():
        result = analyzer.analyze(np.ascontiguousarray(img))
        _assert_upright_face(result, (512, 512)) if name != "rotated 15" else None
        assert result.faces_found == 1, name
        x0, y0, x1, y1 = result.face_box
        h, w = img.shape[:2]
        assert -0.3 * w < x0 < x1 < 1.3 * w and -0.3 * h < y0 < y1 < 1.3 * h, name


def test_several_faces_pick_the_largest_central_one_and_say_so(analyzer, face_rgb, astronaut_rgb):
    canvas = np.full((700, 1200, 3), 120, np.uint8)
    big = cv2.resize(face_rgb, (400, 470))
    canvas[100:570, 400:800] = big  # large and central
    canvas[20:340, 10:330] = astronaut_rgb  # smaller, in a corner
    result = analyzer.analyze(canvas)
    assert result.faces_found == 2
    x0, y0, x1, y1 = result.face_box
    assert 400 < (x0 + x1) / 2 < 800 and 100 < (y0 + y1) / 2 < 570, result.face_box


def test_pick_face_prefers_central_over_slightly_larger_edge_face():
    from models.face.analyzer import pick_face
    from models.face.landmarks import FaceBox

    edge = FaceBox(0, 300, 110, 410, 0.9)  # 110², at the left edge
    centre = FaceBox(450, 300, 550, 400, 0.9)  # 100², in the middle
    assert pick_face([edge, centre], 1000, 700) is centre
    huge = FaceBox(0, 200, 300, 500, 0.9)  # far larger still wins
    assert pick_face([huge, centre], 1000, 700) is huge


def test_tight_photo_crops_inside_the_image_instead_of_smearing(analyzer, astronaut_rgb):
    """A head-and-shoulders crop that would leave the photo shrinks its margin and slides inside."""
    photo = astronaut_rgb[10:250, 60:300]  # the face with little room around it
    result = analyzer.analyze(np.ascontiguousarray(photo))
    x0, y0, x1, y1 = result.crop_box
    h, w = photo.shape[:2]
    assert min(x0, y0) >= 0 and x1 <= w and y1 <= h, (result.crop_box, (w, h))
    (fx0, fy0), (fx1, fy1) = _face_extent(result)
    assert fx0 > 0 and fy0 > 0 and fx1 < 512 and fy1 < 512  # the whole face is still in the crop


def test_yaw_estimate_follows_a_turned_mesh(analyzer, face_rgb):
    from models.face.pose import estimate_yaw
    from models.render.rig import rotation_matrix

    lms = analyzer.analyze(face_rgb).landmarks.astype(np.float64)
    assert abs(estimate_yaw(lms)) < 6.0
    centre = lms.mean(axis=0)
    for yaw in (-35.0, 30.0, 60.0):
        turned = (lms - centre) @ rotation_matrix(0.0, yaw, 0.0).T + centre
        assert abs(estimate_yaw(turned) - yaw) < 6.0, yaw


def test_face_turned_beyond_45_degrees_is_a_typed_422(face_rgb):
    """A mesh turned 65° (what MediaPipe returns for a near-profile) is refused with a clear error."""
    from models.errors import FaceTurnedAwayError
    from models.face import FaceLandmarker
    from models.render.rig import rotation_matrix
    from server.errors import status_for

    class TurnedLandmarker(FaceLandmarker):
        def mesh(self, rgb, box=None):
            pts = super().mesh(rgb, box)
            if pts is None:
                return None
            c = pts.mean(axis=0)
            return ((pts - c) @ rotation_matrix(0.0, 65.0, 0.0).T + c).astype(np.float32)

    with pytest.raises(FaceTurnedAwayError, match="turned") as info:
        FaceAnalyzer(landmarker=TurnedLandmarker()).analyze(face_rgb)
    assert status_for(info.value) == 422
