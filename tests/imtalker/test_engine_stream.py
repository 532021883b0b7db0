"""End to end on CPU with the manifest weights in the real checkpoint format."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from models.engines.base import Engine, EngineStream
from models.errors import InvalidAudioError
from models.imtalker.engine import ImTalkerEngine
from models.imtalker.generator import WindowContext
from models.imtalker.motion_stream import WINDOW_SAMPLES, WindowRequest, generate_windows
from models.imtalker.portrait import imtalker_crop_box
from models.types import EngineParams

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def engine(checkpoint_folder: Path) -> ImTalkerEngine:
    return ImTalkerEngine(weights_dir=checkpoint_folder, device="cpu", render_batch=5)


@pytest.fixture(scope="module")
def face(sample_face_path: Path) -> np.ndarray:
    bgr = cv2.imread(str(sample_face_path))
    assert bgr is not None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def speech_like(samples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 16000.0
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    return (0.3 * envelope * np.sin(2 * np.pi * 180 * t) + 0.02 * rng.standard_normal(samples)).astype(
        np.float32
    )


FULL_E2E = torch.cuda.is_available() or os.environ.get("FACESTREAM_IMTALKER_FULL_E2E") == "1"


def test_short_timeline_through_engine_interface(engine: ImTalkerEngine, face: np.ndarray) -> None:
    """prepare -> open_stream -> push (odd chunks) -> flush: 5 frames, consecutive, 512x512."""
    assert isinstance(engine, Engine)
    params = EngineParams(seed=7, nfe=3, cfg_scale=2.0, pose_style=(5.0, -3.0, 0.0))
    avatar = engine.prepare(face, params)
    assert avatar.image.shape == (512, 512, 3) and avatar.landmarks.shape == (478, 3)
    stream = engine.open_stream(avatar, params)
    assert isinstance(stream, EngineStream) and stream.lookahead_frames == 49
    audio = speech_like(5 * 640 - 100, seed=1)
    assert stream.push_audio(audio[:1000]) == [] and stream.push_audio(audio[1000:]) == []
    frames = stream.flush()
    assert [f.index for f in frames] == list(range(5))
    assert all(f.image.shape == (512, 512, 3) and f.image.dtype == np.uint8 for f in frames)
    assert all(f.speech for f in frames)
    stack = np.stack([f.image for f in frames]).astype(np.float32)
    assert stack.std(axis=0).mean() > 0.5  # the face moves: frames are not copies of one image
    with pytest.raises(InvalidAudioError):
        engine.open_stream(avatar, params).push_audio(np.full(10, np.nan, dtype=np.float32))
    stream.close()


@pytest.mark.skipif(
    not FULL_E2E,
    reason="renders 52 frames (~4 min on 2 CPU cores); runs on CUDA or with FACESTREAM_IMTALKER_FULL_E2E=1",
)
@pytest.mark.timeout(1200)
def test_streams_two_windows_with_context_through_engine_interface(
    engine: ImTalkerEngine, face: np.ndarray
) -> None:
    params = EngineParams(seed=7, nfe=3, cfg_scale=2.0)
    stream = engine.open_stream(engine.prepare(face, params), params)
    audio = speech_like(WINDOW_SAMPLES + 2 * 640, seed=1)
    frames = []
    for piece in np.array_split(audio[:WINDOW_SAMPLES], [7000, 7001, 20000]):
        frames += stream.push_audio(piece)
    assert [f.index for f in frames] == list(range(50))
    assert not torch.equal(stream.context.prev_x, torch.zeros_like(stream.context.prev_x))
    frames += stream.push_audio(audio[WINDOW_SAMPLES:]) + stream.flush()
    assert [f.index for f in frames] == list(range(52))


def test_window_batching_and_context_carry(engine: ImTalkerEngine) -> None:
    """Two sessions' windows in one batch equal the windows run alone; window 2 depends on
    window 1's context (the carried state is real, not reset)."""
    ref = torch.randn(1, 32, generator=torch.Generator().manual_seed(3))
    noise = [torch.randn(1, 50, 32, generator=torch.Generator().manual_seed(s)) for s in (1, 2)]
    audio = [speech_like(WINDOW_SAMPLES, seed=s) for s in (1, 2)]
    requests = [
        WindowRequest(a, ref, WindowContext.zeros(1, "cpu"), n, None, None)
        for a, n in zip(audio, noise, strict=True)
    ]
    run = lambda reqs: generate_windows(engine.audio_encoder, engine.generator, reqs, 4, 2.0)  # noqa: E731
    batched = run(requests)
    alone = [run([r])[0] for r in requests]
    for (codes_b, ctx_b), (codes_a, _) in zip(batched, alone, strict=True):
        assert torch.allclose(codes_b, codes_a, atol=1e-5)
        assert torch.allclose(ctx_b.prev_x, codes_a[:, -10:], atol=1e-5)
    second = WindowRequest(audio[1], ref, batched[0][1], noise[1], None, None)
    with_context = run([second])[0][0]
    assert (with_context - batched[1][0]).abs().max() > 1e-2


def test_imtalker_crop_rule() -> None:
    assert imtalker_crop_box((100, 100, 200, 220), 1000, 1000) == (54, 64, 246, 256)
    assert imtalker_crop_box((0, 0, 100, 100), 300, 200) == (0, 0, 160, 160)
    assert imtalker_crop_box((250, 150, 300, 200), 300, 200) == (220, 120, 300, 200)
