"""Parsing and range-checking the multipart form fields of the published API, with clear messages.

Fields arrive as strings (so that a bad value yields our message, not a framework dump); each
parser raises InvalidFieldError (→ 422) naming the field, the value and the allowed range.
"""

from __future__ import annotations

import json
import math

from fastapi import UploadFile

from models.types import EngineParams
from server.errors import InvalidFieldError, PayloadTooLargeError

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def parse_bool(name: str, value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise InvalidFieldError(f"{name} must be true or false, got {value!r}")


def parse_int(name: str, value: str | None, default: int, lo: int, hi: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value.strip())
    except ValueError:
        raise InvalidFieldError(f"{name} must be an integer, got {value!r}") from None
    if not lo <= number <= hi:
        raise InvalidFieldError(f"{name} must be between {lo} and {hi}, got {number}")
    return number


def parse_float(name: str, value: str | None, default: float, lo: float, hi: float) -> float:
    if value is None or value == "":
        return default
    try:
        number = float(value.strip())
    except ValueError:
        raise InvalidFieldError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or not lo <= number <= hi:
        raise InvalidFieldError(f"{name} must be between {lo:g} and {hi:g}, got {value.strip()}")
    return number


def parse_vector(
    name: str, value: str | None, labels: tuple[str, ...], limit: float
) -> tuple[float, ...] | None:
    """A JSON list like ``[pitch, yaw, roll]``; each entry finite and within ±``limit``."""
    if value is None or value.strip() == "":
        return None
    shape = "[" + ", ".join(labels) + "]"
    try:
        data = json.loads(value) if len(value) <= 1024 else None  # 3 numbers need far less
    except (json.JSONDecodeError, RecursionError):  # RecursionError: "[[[[…" nested past the limit
        raise InvalidFieldError(f"{name} must be a JSON list {shape}, got {value[:64]!r}") from None
    if (
        not isinstance(data, list)
        or len(data) != len(labels)
        or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in data)
    ):
        raise InvalidFieldError(f"{name} must be a JSON list of {len(labels)} numbers {shape}, got {value!r}")
    if not all(math.isfinite(x) and abs(x) <= limit for x in data):
        raise InvalidFieldError(f"{name} values must be finite and within ±{limit:g}, got {value!r}")
    return tuple(float(x) for x in data)


def parse_engine_params(
    crop: str | None,
    seed: str | None,
    nfe: str | None,
    cfg_scale: str | None,
    pose_style: str | None,
    gaze_style: str | None,
) -> EngineParams:
    pose = parse_vector("pose_style", pose_style, ("pitch", "yaw", "roll"), 45.0)
    gaze = parse_vector("gaze_style", gaze_style, ("x", "y"), 1.0)
    return EngineParams(
        crop=parse_bool("crop", crop, True),
        seed=parse_int("seed", seed, 42, -(2**63), 2**63 - 1),
        nfe=parse_int("nfe", nfe, 10, 5, 50),
        cfg_scale=parse_float("cfg_scale", cfg_scale, 2.0, 1.0, 5.0),
        pose_style=pose if pose is not None else (0.0, 0.0, 0.0),  # type: ignore[arg-type]
        gaze_style=gaze if gaze is not None else (0.0, 0.0),  # type: ignore[arg-type]
    )


async def read_upload(name: str, upload: UploadFile | None, limit: int, required: bool = True) -> bytes:
    """The upload's bytes, refusing more than ``limit`` (413) without reading past it."""
    if upload is None or isinstance(upload, str):
        if required:
            raise InvalidFieldError(f"{name} is required (a file field)")
        return b""
    if upload.size is not None and upload.size > limit:
        raise PayloadTooLargeError(f"{name} is {upload.size} bytes; the limit is {limit} bytes")
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLargeError(f"{name} is larger than the limit of {limit} bytes")
    return data
