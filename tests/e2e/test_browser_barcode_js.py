"""The page's barcode reader (static/latency-probe.js) reads what server/barcode.py stamps, after a
real x264 round trip: the two implementations must stay in step."""

from __future__ import annotations

import json
import shutil
import subprocess

import cv2
import numpy as np
import pytest

from hls.barcode import MAX_INDEX, stamp_barcode
from tests.support.browser import run_node
from tests.support.media import raw_rgb_input

READER = """
import { readFileSync } from 'node:fs';
import { readBarcode, decodeBits } from './static/latency-probe.js';
const [path, width, height] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
const bytes = readFileSync(path);
const frameBytes = width * height * 4;
const indices = [];
for (let at = 0; at < bytes.length; at += frameBytes) {
  indices.push(readBarcode(bytes.subarray(at, at + frameBytes), width));
}
console.log(JSON.stringify({ indices, allZero: decodeBits(new Array(32).fill(0)) }));
"""


@pytest.mark.parametrize("size", [512, 384])
def test_js_reader_matches_python_stamps_after_x264(ffmpeg, sample_face_path, tmp_path, size: int) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    face = cv2.cvtColor(cv2.resize(cv2.imread(str(sample_face_path)), (size, size)), cv2.COLOR_BGR2RGB)
    indices = [0, 1, 250, 4097, 99_999, MAX_INDEX, 12, 13]
    frames = b"".join(stamp_barcode(np.roll(face, 5 * k, axis=0), i).tobytes() for k, i in enumerate(indices))
    encoded = subprocess.run(
        [*raw_rgb_input(ffmpeg, size, size), "-c:v", "libx264", "-pix_fmt", "yuv420p", "-f", "mpegts", "-"],
        input=frames,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    rgba = subprocess.run(
        [ffmpeg, "-v", "error", "-f", "mpegts", "-i", "-", "-f", "rawvideo", "-pix_fmt", "rgba", "-"],
        input=encoded,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    path = tmp_path / "frames.rgba"
    path.write_bytes(rgba)
    result = run_node(
        ["--input-type=module", "-e", READER, str(path), str(size), str(size)], {}, timeout_s=60
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["indices"] == indices
    assert out["allZero"] is None
