"""``prepare_avatar``: the one place an upload becomes an ``Avatar`` (face analysis, blocking).

Engines that can read the upload bytes themselves (``PreparesBytes``: EXIF rotation, a header
pixel check, any format) get the bytes; others get the decoded RGB array. Live sessions,
progressive renders, MP4 renders, the CLI and the start-up warm-up all call this.
"""

from __future__ import annotations

from models.engines.base import Engine, PreparesBytes
from models.face.decode import decode_image_bytes
from models.types import Avatar, EngineParams


def prepare_avatar(engine: Engine, image: bytes, params: EngineParams) -> Avatar:
    """Blocking (face analysis takes tens of ms to seconds): call off the event loop."""
    if isinstance(engine, PreparesBytes):
        return engine.prepare_bytes(image, params)
    return engine.prepare(decode_image_bytes(image), params)
