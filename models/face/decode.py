"""Upload bytes → upright RGB uint8, refusing what is not a sane image before decoding it fully."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from models.errors import InvalidImageError

DEFAULT_MAX_PIXELS = 50_000_000
"""Refuse larger images (checked from the header). 50 MP admits 8000×6000 camera photos."""


DRAFT_KEEP_SIDE = 3000
"""Large JPEGs are DCT-downscaled while decoding (2-8x faster) but keep at least this long side:
plenty for a 512² face crop unless the face is a small part of a huge photo."""
_SWAPS_AXES = {5, 6, 7, 8}  # EXIF orientations that rotate by 90°


@dataclass(frozen=True, slots=True)
class DecodedUpload:
    rgb: np.ndarray  # upright (H, W, 3) uint8, possibly reduced by JPEG draft decoding
    source_size: tuple[int, int]  # upright (width, height) of the full-resolution image

    @property
    def scale(self) -> float:
        """Source pixels per decoded pixel (1.0 unless draft-decoded)."""
        return self.source_size[0] / self.rgb.shape[1]


def decode_image_bytes(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an uploaded image at full resolution (see ``decode_upload``)."""
    return decode_upload(data, max_pixels, keep_side=None).rgb


def decode_upload(
    data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, keep_side: int | None = DRAFT_KEEP_SIDE
) -> DecodedUpload:
    """Decode an uploaded image: EXIF-rotate, convert any mode to RGB, guard decompression bombs.

    The pixel count is checked from the header (``Image.open`` is lazy), so a tiny file that
    claims 100 000² pixels is refused without allocating it. JPEGs larger than twice
    ``keep_side`` are decoded at a reduced DCT scale.
    """
    if not data:
        raise InvalidImageError("empty upload: no image bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width * height > max_pixels:
                raise InvalidImageError(
                    f"image has {width}x{height} = {width * height} pixels, "
                    f"more than the {max_pixels} allowed"
                )
            orientation = img.getexif().get(0x0112, 1)
            source_size = (height, width) if orientation in _SWAPS_AXES else (width, height)
            if keep_side and img.format == "JPEG" and max(width, height) >= 2 * keep_side:
                factor = max(width, height) / keep_side
                img.draft("RGB", (int(width / factor) + 1, int(height / factor) + 1))
            img.load()
            rgb = to_rgb(ImageOps.exif_transpose(img))
    except InvalidImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImageError(f"not a decodable image: {exc}") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # truncated / corrupt streams
        raise InvalidImageError(f"corrupt image data: {exc}") from exc
    return DecodedUpload(rgb, source_size)


def to_rgb(img: Image.Image) -> np.ndarray:
    """Any Pillow mode (L, LA, P, RGBA, I;16, I, F, CMYK…) → (H, W, 3) uint8 RGB.

    Transparency is composited over white (a cut-out portrait on black would read as a dark halo).
    """
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        gray = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def normalize_rgb_array(image: np.ndarray) -> np.ndarray:
    """Validate an in-memory image and bring it to (H, W, 3) uint8 (gray / RGBA / 16-bit accepted)."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidImageError(f"expected an (H, W[, 1|3|4]) image array, got shape {arr.shape}")
    if arr.dtype == np.uint16:
        arr = (arr.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise InvalidImageError("image array contains NaN/Inf")
        scale = 255.0 if arr.max(initial=0) <= 1.0 else 1.0
        arr = np.clip(arr * scale + 0.5, 0, 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        alpha = arr[:, :, 3:4].astype(np.float32) / 255.0
        arr = (arr[:, :, :3] * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
    return np.ascontiguousarray(arr)
