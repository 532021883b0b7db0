"""Frame-index barcodes for measuring glass-to-glass latency on the decoded video a viewer sees.

Why a barcode: the only honest way to know which frame a browser is showing is to read it off the
pixels after x264, HLS segmentation, hls.js and the compositor have had their way. The index is
painted as a strip of square black/white cells across the top of the frame:

    cells 0-3    start pattern 1 0 1 1       (1 = white)
    cells 4-27   24-bit frame index, most significant bit first
    cell  28     even parity over the 24 index bits
    cells 29-31  end pattern 0 1 0

The strip is 32 cells wide and one cell tall; the cell side is ``width // 32`` pixels (16 px at
512 wide), so cells align with x264's 16×16 macroblocks at the usual sizes and survive default
quality. A reader thresholds each cell's centre at the midpoint between the known white and black
cells of the start/end patterns, then checks both patterns and the parity: a frame whose strip is
missing or damaged reads as ``None`` instead of a wrong index. ``static/latency-probe.js`` holds
the same reader for the browser; keep the two in step.
"""

from __future__ import annotations

import numpy as np

CELLS = 32
INDEX_BITS = 24
START = (1, 0, 1, 1)
END = (0, 1, 0)
MIN_CELL = 4
MAX_INDEX = (1 << INDEX_BITS) - 1


def cell_size(width: int) -> int:
    """Side of one cell in pixels for a frame ``width`` pixels wide."""
    return width // CELLS


def encode_bits(index: int) -> list[int]:
    """The 32 cell values (1 = white) that encode ``index``."""
    if not 0 <= index <= MAX_INDEX:
        raise ValueError(f"barcode index must be in 0..{MAX_INDEX}, got {index}")
    data = [(index >> (INDEX_BITS - 1 - i)) & 1 for i in range(INDEX_BITS)]
    return [*START, *data, sum(data) % 2, *END]


def decode_bits(bits: list[int]) -> int | None:
    """The index the 32 cell values encode, or None when a pattern or the parity does not match."""
    if len(bits) != CELLS:
        return None
    data = bits[len(START) : len(START) + INDEX_BITS]
    parity = bits[len(START) + INDEX_BITS]
    if tuple(bits[: len(START)]) != START or tuple(bits[-len(END) :]) != END:
        return None
    if sum(data) % 2 != parity:
        return None
    value = 0
    for bit in data:
        value = (value << 1) | bit
    return value


def stamp_barcode(image: np.ndarray, index: int) -> np.ndarray:
    """A copy of the RGB/gray ``image`` with ``index`` painted into its top strip."""
    height, width = image.shape[:2]
    cell = cell_size(width)
    if cell < MIN_CELL or height < cell:
        raise ValueError(
            f"frame {width}x{height} is too small for a barcode (needs >= {CELLS * MIN_CELL} wide)"
        )
    out = image.copy()
    for i, bit in enumerate(encode_bits(index)):
        out[:cell, i * cell : (i + 1) * cell] = 255 if bit else 0
    return out


def _luma(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image.astype(np.float32)
    rgb = image[..., :3].astype(np.float32)
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def read_cells(image: np.ndarray) -> list[float]:
    """Mean luma of the central half of each cell of the top strip."""
    width = image.shape[1]
    cell = cell_size(width)
    if cell < MIN_CELL or image.shape[0] < cell:
        return []
    lo, hi = cell // 4, cell - cell // 4
    strip = _luma(image[:cell, : CELLS * cell])
    return [float(strip[lo:hi, i * cell + lo : i * cell + hi].mean()) for i in range(CELLS)]


def read_barcode(image: np.ndarray) -> int | None:
    """The frame index stamped in ``image`` by :func:`stamp_barcode`, or None if none can be read."""
    cells = read_cells(image)
    if len(cells) != CELLS:
        return None
    known = [*zip(range(len(START)), START, strict=True)]
    known += [(CELLS - len(END) + i, b) for i, b in enumerate(END)]
    white = np.mean([cells[i] for i, b in known if b])
    black = np.mean([cells[i] for i, b in known if not b])
    if white - black < 64:  # no strip here, or washed out beyond trust
        return None
    threshold = (white + black) / 2
    return decode_bits([int(v > threshold) for v in cells])
