"""The engine's speed options at the tiny size (same topology as the real networks, CPU-fast):
cross-session batching, a short first window, half precision wiring, and (on CUDA) compile.

Why tiny: these check the engine's control flow and numerics plumbing, which do not depend on
the widths; a real-size window takes minutes on two CPU cores. Real-size numerics are covered
by the conformance tests and test_half_precision.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models.imtalker.engine import ImTalkerEngine, ImTalkerStream, resolve_dtype
from models.imtalker.flow_transformer import WINDOW_FRAMES
from models.imtalker.motion_stream import WINDOW_SAMPLES
from models.imtalker.sizes import TINY
from models.imtalker.testing_weights import write_checkpoint_folder
from models.types import SAMPLES_PER_FRAME, EngineParams, VideoFrame

CODE_ATOL = 1e-5
"""fp32 batched-vs-alone bound on motion codes (measured max 4.8e-7: only the summation order
of the batched matmuls differs)."""
FRAME_MEAN_LEVELS = 0.05
FRAME_FAR_FRACTION = 0.01
"""... and on uint8 frames: mean |diff| <= 0.05 levels (measured <= 0.013) and at most 1% of
values more than 1 level apart (measured <= 0.16%). Not a max bound: a 5e-7 code difference
can flip the fine levels' argmax in a near-tie cell, which copies another 4x4 appearance block
there (measured up to 20 levels); that fragility is the reference's own (see
motion_transfer.py), and it is the same for any two fp32 runs that sum in another order."""


@pytest.fixture(scope="module")
def tiny_folder(conformance_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_checkpoint_folder(conformance_dir, tmp_path_factory.mktemp("imtalker_tiny"), TINY)


def tiny_engine(folder: Path, **options: object) -> ImTalkerEngine:
    return ImTalkerEngine(
        folder, device=str(options.pop("device", "cpu")), size=TINY, render_batch=10, **options
    )


@pytest.fixture(scope="module")
def engine(tiny_folder: Path) -> ImTalkerEngine:
    return tiny_engine(tiny_folder)


def portrait_image(seed: int) -> np.ndarray:
    """A smooth random 'portrait' (blurred noise), so sessions have distinct encodings."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((16, 16, 3))
    return (np.kron(coarse, np.ones((32, 32, 1))) * 255).astype(np.uint8)


def speech_like(samples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 16000.0
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    tone = 0.3 * envelope * np.sin(2 * np.pi * (150 + 40 * seed) * t)
    return (tone + 0.02 * rng.standard_normal(samples)).astype(np.float32)


def open_streams(engine: ImTalkerEngine, count: int, nfe: int = 4) -> list[ImTalkerStream]:
    return [
        ImTalkerStream(
            engine,
            engine.encode_portrait(portrait_image(s)),
            EngineParams(seed=11 + s, nfe=nfe, cfg_scale=2.0, pose_style=(3.0 * s, 0.0, 0.0)),
        )
        for s in range(count)
    ]


def stack(frames: list[VideoFrame]) -> np.ndarray:
    return np.stack([f.image for f in frames]).astype(np.int16)


def assert_frames_close(got: list[VideoFrame], want: list[VideoFrame]) -> None:
    diff = np.abs(stack(got) - stack(want))
    assert diff.mean() <= FRAME_MEAN_LEVELS, f"mean |diff| {diff.mean():.4f} levels"
    assert (diff > 1).mean() <= FRAME_FAR_FRACTION, f"{(diff > 1).mean():.2%} of values > 1 level apart"


def test_batched_sessions_equal_sessions_run_alone(tiny_folder: Path) -> None:
    """Three sessions (own portrait, seed, pose) pushed together through ``push_audio_many`` give
    the frames and carried contexts each gives alone: a short first window (batched too), a
    2 s window with context, and a partial flush."""
    engine = tiny_engine(tiny_folder, first_window_frames=10)
    total = 10 + WINDOW_FRAMES + 7
    audio = [speech_like(total * SAMPLES_PER_FRAME, seed=s) for s in range(3)]
    together, alone = open_streams(engine, 3), open_streams(engine, 3)
    batched = engine.push_audio_many(together, audio)
    batched = [b + s.flush() for b, s in zip(batched, together, strict=True)]
    single = [s.push_audio(a) + s.flush() for s, a in zip(alone, audio, strict=True)]
    for b, s, tb, ta in zip(batched, single, together, alone, strict=True):
        assert [f.index for f in b] == [f.index for f in s] == list(range(total))
        assert_frames_close(b, s)
        assert torch.allclose(tb.context.prev_x, ta.context.prev_x, atol=CODE_ATOL)
    # Different sessions really got different frames (the batch did not broadcast one session).
    assert np.abs(stack(batched[0]) - stack(batched[1])).mean() > 1.0


def test_batched_codes_equal_alone_within_fp32_tolerance(engine: ImTalkerEngine) -> None:
    """The motion codes themselves (what batching changes) agree to CODE_ATOL."""
    audio = [speech_like(WINDOW_SAMPLES, seed=s) for s in range(3)]
    together, alone = open_streams(engine, 3), open_streams(engine, 3)
    batched = engine.sample_windows(list(zip(together, audio, strict=True)), 4, 2.0)
    for stream, a, (codes, context) in zip(alone, audio, batched, strict=True):
        [(want, want_context)] = engine.sample_windows([(stream, a)], 4, 2.0)
        assert (codes - want).abs().max() <= CODE_ATOL
        assert (context.prev_a - want_context.prev_a).abs().max() <= CODE_ATOL


def test_batching_refuses_the_same_stream_twice(engine: ImTalkerEngine) -> None:
    [stream] = open_streams(engine, 1)
    audio = speech_like(100, seed=0)
    with pytest.raises(ValueError, match="twice"):
        engine.push_audio_many([stream, stream], [audio, audio])


@pytest.mark.parametrize("first", [10, 25])
def test_short_first_window_then_full_windows_chunk_invariant(tiny_folder: Path, first: int) -> None:
    """A short first window returns its frames after ``first`` frames of audio; later windows
    are 2 s and carry the context; any chunking of the same audio gives the same frames."""
    engine = tiny_engine(tiny_folder, first_window_frames=first)
    audio = speech_like((first + WINDOW_FRAMES + 3) * SAMPLES_PER_FRAME, seed=3)
    [whole, pieces] = [open_streams(engine, 1)[0] for _ in range(2)]
    early = whole.push_audio(audio[: first * SAMPLES_PER_FRAME])
    assert [f.index for f in early] == list(range(first))
    assert not torch.equal(whole.context.prev_x, torch.zeros_like(whole.context.prev_x))
    assert whole.window_samples == WINDOW_SAMPLES
    rest = whole.push_audio(audio[first * SAMPLES_PER_FRAME :])
    assert [f.index for f in rest] == list(range(first, first + WINDOW_FRAMES))
    chunked: list[VideoFrame] = []
    for piece in np.split(audio, [333, 4000, 4001, 30000]):
        chunked += pieces.push_audio(piece)
    assert np.array_equal(stack(early + rest), stack(chunked))


def test_short_first_window_changes_only_the_grid_not_the_default(tiny_folder: Path) -> None:
    """The default engine keeps the reference's 2 s grid: nothing before 50 frames of audio."""
    engine = tiny_engine(tiny_folder)
    [stream] = open_streams(engine, 1)
    assert engine.first_window_frames == WINDOW_FRAMES
    assert stream.push_audio(speech_like(WINDOW_SAMPLES - 1, seed=1)) == []
    with pytest.raises(ValueError, match="first_window_frames"):
        tiny_engine(tiny_folder, first_window_frames=9)  # the next context needs 10 frames


def test_half_precision_option_runs_the_models_in_half(tiny_folder: Path, engine: ImTalkerEngine) -> None:
    """dtype='bf16' really autocasts (encodings come out bf16), keeps the ODE state and context
    fp32, and its motion codes stay within the bound the real-size test measures (here max
    0.073 / mean 0.015 vs fp32, like the real size's 0.070 / 0.016). Frames are only checked
    to differ: the generated-weight decoder turns any rounding into frame differences as large
    as another portrait's (both ~20 levels mean at this size), see test_half_precision.py."""
    half = tiny_engine(tiny_folder, dtype="bf16")
    portrait = half.encode_portrait(portrait_image(0))
    assert portrait.appearance[0].dtype == torch.bfloat16
    audio = speech_like(WINDOW_SAMPLES, seed=0)
    [ref] = open_streams(engine, 1)
    [low] = open_streams(half, 1)
    [(want, _)] = engine.sample_windows([(ref, audio)], 4, 2.0)
    [(got, context)] = half.sample_windows([(low, audio)], 4, 2.0)
    assert got.dtype == context.prev_x.dtype == torch.float32
    diff = (got - want).abs()
    assert 0 < diff.mean() <= 0.04 and diff.max() <= 0.2
    frames = half.render_frames(got[0, :3], low.portrait)
    assert frames.shape == (3, TINY.render_size, TINY.render_size, 3) and frames.std() > 1.0
    assert not np.array_equal(frames, engine.render_frames(want[0, :3], ref.portrait))


def test_dtype_names() -> None:
    assert resolve_dtype("bf16") is torch.bfloat16 and resolve_dtype("float16") is torch.float16
    assert resolve_dtype(None) is torch.float32
    with pytest.raises(ValueError, match="fp32, bf16 or fp16"):
        resolve_dtype("int8")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_cuda_compiled_renderer_matches_eager(tiny_folder: Path, dtype: str) -> None:
    """torch.compile (CUDA graphs) of the fixed-shape renderer renders what eager renders."""
    eager = tiny_engine(tiny_folder, device="cuda", dtype=dtype)
    compiled = tiny_engine(tiny_folder, device="cuda", dtype=dtype, compile_mode="reduce-overhead")
    portrait = eager.encode_portrait(portrait_image(0))
    codes = torch.randn(23, 32, generator=torch.Generator().manual_seed(0)).cuda()
    want = eager.render_frames(codes, portrait).astype(np.int16)
    got = compiled.render_frames(codes, portrait).astype(np.int16)  # 3 batches, the last padded
    assert got.shape == want.shape == (23, TINY.render_size, TINY.render_size, 3)
    assert np.abs(got - want).mean() < (0.5 if dtype == "fp32" else 3.0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_batched_sessions_equal_alone(tiny_folder: Path) -> None:
    engine = tiny_engine(tiny_folder, device="cuda")
    audio = [speech_like(WINDOW_SAMPLES, seed=s) for s in range(4)]
    together, alone = open_streams(engine, 4), open_streams(engine, 4)
    batched = engine.push_audio_many(together, audio)
    for frames, stream, a in zip(batched, alone, audio, strict=True):
        assert_frames_close(frames, stream.push_audio(a))
