"""``prepare_avatar``: engines that read upload bytes get the bytes (``PreparesBytes``, checked
with isinstance), others a decoded RGB array; both kinds satisfy ``models.engines.base.Engine``."""

from __future__ import annotations

import numpy as np

from models.engines.base import Engine, PreparesBytes
from models.types import Avatar, EngineParams
from server.compute.avatar import prepare_avatar
from tests.support.engines import ProbeEngine


class BytesEngine(ProbeEngine):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[bytes] = []

    def prepare_bytes(self, data: bytes, params: EngineParams) -> Avatar:
        self.seen.append(data)
        return self.prepare(np.zeros((8, 8, 3), np.uint8), params)


class ArrayEngine(ProbeEngine):
    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []

    def prepare(self, image: np.ndarray, params: EngineParams) -> Avatar:
        self.shapes.append(image.shape)
        return super().prepare(image, params)


def test_engines_that_read_bytes_get_the_upload_itself(sample_face_path) -> None:
    engine = BytesEngine()
    assert isinstance(engine, Engine) and isinstance(engine, PreparesBytes)
    data = sample_face_path.read_bytes()
    avatar = prepare_avatar(engine, data, EngineParams())
    assert engine.seen == [data] and avatar.size == (engine.size, engine.size)


def test_other_engines_get_the_decoded_rgb_image(sample_face_path) -> None:
    engine = ArrayEngine()
    assert isinstance(engine, Engine) and not isinstance(engine, PreparesBytes)
    prepare_avatar(engine, sample_face_path.read_bytes(), EngineParams())
    (shape,) = engine.shapes
    assert len(shape) == 3 and shape[2] == 3 and min(shape[:2]) >= 64
