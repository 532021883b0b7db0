"""Frame-index barcodes: stamp → real x264 encode → decode → read back."""

from __future__ import annotations

import subprocess

import cv2
import numpy as np
import pytest

from hls.barcode import CELLS, MAX_INDEX, decode_bits, encode_bits, read_barcode, stamp_barcode
from tests.support.media import raw_rgb_input


def _face_frame(path, size: int) -> np.ndarray:
    bgr = cv2.imread(str(path))
    return cv2.cvtColor(cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)


def _x264_roundtrip(ffmpeg: str, frames: list[np.ndarray], extra: list[str]) -> list[np.ndarray]:
    """Encodes RGB frames with libx264 (yuv420p, default CRF unless ``extra`` says otherwise) into an
    MPEG-TS like the HLS sink writes, and decodes them back to RGB."""
    h, w = frames[0].shape[:2]
    enc = subprocess.run(
        [
            *raw_rgb_input(ffmpeg, w, h),
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-tune",
            "zerolatency",
            *extra,
            "-f",
            "mpegts",
            "-",
        ],
        input=b"".join(f.tobytes() for f in frames),
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    dec = subprocess.run(
        [ffmpeg, "-v", "error", "-f", "mpegts", "-i", "-", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        input=enc,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    out = np.frombuffer(dec, np.uint8).reshape(-1, h, w, 3)
    assert len(out) == len(frames)
    return list(out)


def test_bits_roundtrip_and_reject_damage() -> None:
    for index in (0, 1, 2, 25, 1234, 99_999, MAX_INDEX):
        bits = encode_bits(index)
        assert len(bits) == CELLS
        assert decode_bits(bits) == index
        for flip in (0, 5, 20, 28, 30):  # a pattern cell, data cells, the parity cell
            damaged = list(bits)
            damaged[flip] ^= 1
            assert decode_bits(damaged) is None
    with pytest.raises(ValueError):
        encode_bits(MAX_INDEX + 1)
    with pytest.raises(ValueError):
        encode_bits(-1)


def test_stamp_is_pure_and_reads_back_losslessly(sample_face_path) -> None:
    face = _face_frame(sample_face_path, 512)
    before = face.copy()
    stamped = stamp_barcode(face, 4242)
    assert np.array_equal(face, before), "stamp_barcode must not modify its input"
    assert read_barcode(stamped) == 4242
    assert np.array_equal(stamped[16:], face[16:]), "only the top strip (one 16-px cell tall) changes"
    assert read_barcode(face) is None, "an unstamped face must not read as an index"
    assert read_barcode(np.zeros((512, 512, 3), np.uint8)) is None


def test_too_small_frame_is_refused() -> None:
    with pytest.raises(ValueError):
        stamp_barcode(np.zeros((64, 64, 3), np.uint8), 1)
    assert read_barcode(np.zeros((64, 64, 3), np.uint8)) is None


@pytest.mark.parametrize(("size", "extra"), [(512, []), (256, []), (512, ["-crf", "35"])])
def test_survives_x264(ffmpeg, sample_face_path, size: int, extra: list[str]) -> None:
    """Every frame of a moving, noisy sequence reads back its own index after x264 + MPEG-TS."""
    rng = np.random.default_rng(7)
    face = _face_frame(sample_face_path, size)
    indices = [0, 1, 2, 3, 77, 1000, 1001, 65_535, 123_456, MAX_INDEX] * 3
    frames = []
    for k, index in enumerate(indices):
        shifted = np.roll(face, 3 * k, axis=1)  # motion so that x264 has real work between frames
        noisy = np.clip(shifted.astype(np.int16) + rng.integers(-12, 13, shifted.shape), 0, 255)
        frames.append(stamp_barcode(noisy.astype(np.uint8), index))
    decoded = _x264_roundtrip(ffmpeg, frames, extra)
    assert [read_barcode(f) for f in decoded] == indices
