"""Load the published IMTalker checkpoint files with strict key checking.

A weights folder holds ``renderer.ckpt`` (Lightning, IMTRenderer under ``gen.``),
``generator.ckpt`` (Lightning, FMGenerator under ``model.``) and ``wav2vec2-base-960h/`` (HF
Wav2Vec2ForCTC). The reference apps load with ``strict=False``, so a checkpoint of the older
architecture generation loads silently and renders garbage; here every mismatch is an error
that names the keys.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch
from torch import nn

from models.errors import EngineUnavailableError
from models.imtalker.audio_encoder import AudioEncoder, build_wav2vec2
from models.imtalker.generator import FMGenerator
from models.imtalker.renderer import IMTRenderer
from models.imtalker.sizes import REAL, ImTalkerSize

RENDERER_FILE = "renderer.ckpt"
GENERATOR_FILE = "generator.ckpt"
WAV2VEC2_DIR = "wav2vec2-base-960h"
WAV2VEC2_FILES = ("config.json", "pytorch_model.bin")
_FORMULA_BUFFERS = ("kernel", "relative_position_index", "attn_mask", "inv_freq", "num_batches_tracked")
_WAV2VEC2_PREFIX = "audio_encoder.wav2vec2."


class CheckpointError(EngineUnavailableError):
    """A checkpoint file is unreadable, of the wrong generation, or its keys do not match."""


def missing_weight_files(weights_dir: Path) -> list[str]:
    weights_dir = Path(weights_dir)
    wanted = [RENDERER_FILE, GENERATOR_FILE] + [f"{WAV2VEC2_DIR}/{name}" for name in WAV2VEC2_FILES]
    return [name for name in wanted if not (weights_dir / name).is_file()]


def read_checkpoint(path: Path) -> dict:
    """torch.load on CPU; tensors-only unpickling first, full unpickling of the user's own file
    only when the Lightning checkpoint holds other objects (hyper-parameters)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError):
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({exc})") from exc
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({exc})") from exc


def _describe(keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(sorted(keys)[:limit])
    return shown + (f" ... (+{len(keys) - limit} more)" if len(keys) > limit else "")


def strict_load(module: nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """Load requiring every parameter; formula buffers may be absent (the module computes them)."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith(_FORMULA_BUFFERS)]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_describe(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_describe(unexpected)}")
    if wrong_shape:
        problems.append(f"shape mismatches: {_describe(wrong_shape)}")
    if problems:
        raise CheckpointError(f"{source}: " + "; ".join(problems))
    module.load_state_dict(state, strict=False)


def renderer_state_from(checkpoint: dict, source: Path) -> dict[str, torch.Tensor]:
    state = checkpoint.get("state_dict", checkpoint)
    renderer = {k[len("gen.") :]: v for k, v in state.items() if k.startswith("gen.")}
    if not renderer:
        raise CheckpointError(f"{source}: no 'gen.*' keys; this is not an IMTalker renderer checkpoint")
    if not any(k.startswith("dense_feature_encoder.down_block_0.") for k in renderer):
        raise CheckpointError(
            f"{source}: older renderer generation (256 px input, no dense_feature_encoder.down_block_0); "
            "this engine needs the 512 px renderer.ckpt published with the current IMTalker release"
        )
    return renderer


def generator_state_from(checkpoint: dict, source: Path) -> dict[str, torch.Tensor]:
    state = checkpoint.get("state_dict", checkpoint)
    if "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    generator = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
    if not generator:
        raise CheckpointError(f"{source}: no 'model.*' keys; this is not an IMTalker generator checkpoint")
    if "fmt.pos_embed" in generator:
        raise CheckpointError(
            f"{source}: older generator generation (absolute position table fmt.pos_embed and a "
            "windowed attention mask); this engine implements the current RoPE generator"
        )
    return generator


def load_renderer(path: Path, size: ImTalkerSize = REAL) -> IMTRenderer:
    renderer = IMTRenderer(size).eval()
    strict_load(renderer, renderer_state_from(read_checkpoint(path), path), path)
    return renderer


def load_generator(path: Path, wav2vec2: nn.Module | None = None, size: ImTalkerSize = REAL) -> FMGenerator:
    """The generator; ``audio_encoder.wav2vec2.*`` tensors in the file overwrite ``wav2vec2``'s
    parameters of the same name, as the reference loader does."""
    state = generator_state_from(read_checkpoint(path), path)
    audio = {k[len(_WAV2VEC2_PREFIX) :]: state.pop(k) for k in list(state) if k.startswith(_WAV2VEC2_PREFIX)}
    generator = FMGenerator(size).eval()
    strict_load(generator, state, path)
    if wav2vec2 is not None and audio:
        with torch.no_grad():
            for name, param in wav2vec2.named_parameters():
                if name in audio:
                    param.copy_(audio[name])
    return generator


def load_wav2vec2(folder: Path) -> AudioEncoder:
    os.environ["HF_HUB_OFFLINE"] = "1"
    wav2vec2 = build_wav2vec2(folder)
    path = folder / "pytorch_model.bin"
    state = read_checkpoint(path)
    encoder_state = {k[len("wav2vec2.") :]: v for k, v in state.items() if k.startswith("wav2vec2.")}
    if not encoder_state:
        raise CheckpointError(f"{path}: no 'wav2vec2.*' keys; expected the HF Wav2Vec2ForCTC layout")
    try:
        # torch's weight-norm hook renames legacy weight_g/weight_v to the parametrization names.
        wav2vec2.load_state_dict(encoder_state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    return AudioEncoder(wav2vec2).eval()


def load_models(
    weights_dir: Path, size: ImTalkerSize = REAL
) -> tuple[AudioEncoder, FMGenerator, IMTRenderer]:
    """``size`` is the published one except in tests and the benchmark's tiny mode (the wav2vec2
    size always comes from the folder's config.json)."""
    weights_dir = Path(weights_dir)
    missing = missing_weight_files(weights_dir)
    if missing:
        raise EngineUnavailableError(
            f"IMTalker weights folder {weights_dir} is incomplete: missing {', '.join(missing)} "
            f"(expected {RENDERER_FILE}, {GENERATOR_FILE} and {WAV2VEC2_DIR}/ "
            "with config.json and pytorch_model.bin)"
        )
    audio = load_wav2vec2(weights_dir / WAV2VEC2_DIR)
    generator = load_generator(weights_dir / GENERATOR_FILE, audio.wav2vec2, size)
    renderer = load_renderer(weights_dir / RENDERER_FILE, size)
    return audio, generator, renderer
