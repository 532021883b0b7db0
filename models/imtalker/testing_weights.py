"""Deterministic test weights rebuilt from the conformance manifests (the fixtures' README rule).

Used by the conformance tests, the end-to-end engine test and the benchmark: the real IMTalker
checkpoints cannot be downloaded here, so these weights stand in for them with the same keys
(and, for the tiny size, the same keys and per-key statistics at smaller shapes).
"""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path

import numpy as np
import torch

from models.imtalker.sizes import REAL, ImTalkerSize


def rebuild_state_dict(
    manifest_path: Path, values: dict[str, np.ndarray] | None = None
) -> dict[str, torch.Tensor]:
    """Every tensor of a manifest except ``const_buffer`` ones (the module computes those)."""
    tensors = json.loads(Path(manifest_path).read_text())["tensors"]
    state: dict[str, torch.Tensor] = {}
    for key, entry in tensors.items():
        shape = entry["shape"]
        if "values_file" in entry:
            if values is None:
                raise ValueError(f"{key} needs {entry['values_file']}, which was not given")
            state[key] = torch.from_numpy(np.asarray(values[key]).copy())
        elif entry["kind"] == "counter":
            state[key] = torch.zeros(shape, dtype=getattr(torch, entry["dtype"]))
        elif entry["kind"] == "const_buffer":
            continue
        elif entry["std"] == 0.0:
            state[key] = torch.full(shape, entry["mean"], dtype=torch.float64).float()
        else:
            generator = torch.Generator().manual_seed(zlib.crc32(key.encode()))
            noise = torch.randn(shape, generator=generator, dtype=torch.float32).double()
            state[key] = (noise * entry["std"] + entry["mean"]).float()
    return state


def tensor_sha256(tensor: torch.Tensor) -> str:
    return hashlib.sha256(np.ascontiguousarray(tensor.detach().cpu().numpy()).tobytes()).hexdigest()


def manifest_mismatches(manifest_path: Path, state: dict[str, torch.Tensor]) -> list[str]:
    """Keys whose shape or sha256 differs from the manifest (buffers included), or are absent."""
    tensors = json.loads(Path(manifest_path).read_text())["tensors"]
    bad = []
    for key, entry in tensors.items():
        value = state.get(key)
        if value is None or list(value.shape) != entry["shape"] or tensor_sha256(value) != entry["sha256"]:
            bad.append(key)
    return bad


def renderer_state(conformance_dir: Path) -> dict[str, torch.Tensor]:
    calibration = dict(np.load(conformance_dir / "renderer_bn_calibration.npz"))
    return rebuild_state_dict(conformance_dir / "renderer_manifest.json", calibration)


def generator_state(conformance_dir: Path) -> dict[str, torch.Tensor]:
    return rebuild_state_dict(conformance_dir / "generator_manifest.json")


def wav2vec2_state(conformance_dir: Path) -> dict[str, torch.Tensor]:
    """Wav2Vec2Model-relative keys with the legacy ``weight_g``/``weight_v`` names."""
    return rebuild_state_dict(conformance_dir / "wav2vec2_manifest.json")


_LEGACY_WEIGHT_NORM = {
    "weight_g": "parametrizations.weight.original0",
    "weight_v": "parametrizations.weight.original1",
}


def sized_state(manifest_path: Path, shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Weights of another size drawn like the manifest's: for every manifest key the module at
    that size has (``shapes``, keyed by the module's own names), a seeded tensor of the module's
    shape with the key's recorded mean and std (keys whose values come from a file get their
    init statistics, so BatchNorm variances start at 1; see ``calibrate_batchnorm``). Keys are
    returned in manifest (checkpoint) naming.

    Why: the tiny size must load through the same checkpoint code path and have weights of the
    same scale as the real ones, without a second set of manifests."""
    tensors = json.loads(Path(manifest_path).read_text())["tensors"]
    state: dict[str, torch.Tensor] = {}
    for key, entry in tensors.items():
        module_key = key
        for legacy, current in _LEGACY_WEIGHT_NORM.items():
            if key.endswith(legacy):
                module_key = key[: -len(legacy)] + current
        if module_key not in shapes or entry["kind"] == "const_buffer":
            continue
        shape = shapes[module_key]
        if entry["kind"] == "counter":
            state[key] = torch.zeros(shape, dtype=getattr(torch, entry["dtype"]))
            continue
        recorded = "values_file" not in entry and "mean" in entry
        mean = float(entry["mean"] if recorded else entry["init_mean"])
        std = float(entry["std"] if recorded else entry["init_std"])
        if std == 0.0:
            state[key] = torch.full(shape, mean, dtype=torch.float32)
        else:
            generator = torch.Generator().manual_seed(zlib.crc32(key.encode()))
            state[key] = torch.randn(shape, generator=generator, dtype=torch.float32) * std + mean
    return state


@torch.no_grad()
def calibrate_batchnorm(module: torch.nn.Module, image: torch.Tensor) -> None:
    """Set every BatchNorm's ``running_var`` to the per-channel E[x^2] of its input on ``image``,
    each BN just before it runs (eval mode, in order): the fixtures' own calibration rule, which
    keeps the identity path from collapsing with generated weights (their README, deviation 1)."""

    def hook(bn: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        bn.running_var.copy_(inputs[0].double().pow(2).mean(dim=(0, 2, 3)).float())

    handles = [
        m.register_forward_pre_hook(hook) for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)
    ]
    try:
        module.eval().encode_portrait(image)
        module.decode(*_decode_inputs(module, image))
    finally:
        for handle in handles:
            handle.remove()


def _decode_inputs(renderer: torch.nn.Module, image: torch.Tensor) -> tuple[list, list, list]:
    portrait = renderer.encode_portrait(image)
    maps = renderer.motion_maps(portrait.motion_code, portrait.identity)
    return maps, portrait.reference_maps, portrait.appearance


def fixture_image(conformance_dir: Path, side: int) -> torch.Tensor:
    """The fixtures' portrait as (1, 3, side, side) in [0, 1]."""
    rgb = np.load(conformance_dir / "renderer_encode.npz")["image_u8_hwc"]
    image = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0
    if image.shape[-1] != side:
        image = torch.nn.functional.interpolate(image, size=(side, side), mode="bilinear", antialias=True)
    return image


def _shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def write_checkpoint_folder(conformance_dir: Path, target: Path, size: ImTalkerSize = REAL) -> Path:
    """Write the manifest weights as ``renderer.ckpt``, ``generator.ckpt`` and
    ``wav2vec2-base-960h/`` exactly as the published checkpoints nest them. Any other ``size``
    gets ``sized_state`` weights and a wav2vec2 config with that size's widths; load that
    folder with the same ``size``."""
    from models.imtalker.audio_encoder import build_wav2vec2
    from models.imtalker.generator import FMGenerator
    from models.imtalker.renderer import IMTRenderer

    target.mkdir(parents=True, exist_ok=True)
    config = json.loads((conformance_dir / "wav2vec2_config.json").read_text())
    if size == REAL:
        renderer_weights = renderer_state(conformance_dir)
        generator_weights = generator_state(conformance_dir)
        wav2vec2_weights = wav2vec2_state(conformance_dir)
    else:
        config.update(size.wav2vec2_overrides())
        renderer_module = IMTRenderer(size)
        renderer_weights = sized_state(conformance_dir / "renderer_manifest.json", _shapes(renderer_module))
        renderer_module.load_state_dict(renderer_weights, strict=False)
        calibrate_batchnorm(renderer_module, fixture_image(conformance_dir, size.render_size))
        calibrated = renderer_module.state_dict()
        renderer_weights = {k: calibrated[k].clone() for k in renderer_weights}
        generator_weights = sized_state(
            conformance_dir / "generator_manifest.json", _shapes(FMGenerator(size))
        )
        wav2vec2_weights = sized_state(
            conformance_dir / "wav2vec2_manifest.json", _shapes(build_wav2vec2(config))
        )
    renderer = {f"gen.{k}": v for k, v in renderer_weights.items()}
    torch.save({"state_dict": renderer, "epoch": 0}, target / "renderer.ckpt")
    generator = {f"model.{k}": v for k, v in generator_weights.items()}
    torch.save({"state_dict": generator, "epoch": 0}, target / "generator.ckpt")
    folder = target / "wav2vec2-base-960h"
    folder.mkdir(exist_ok=True)
    config["architectures"] = ["Wav2Vec2ForCTC"]
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    preprocessor = (conformance_dir / "wav2vec2_preprocessor_config.json").read_text()
    (folder / "preprocessor_config.json").write_text(preprocessor)
    (folder / "feature_extractor_config.json").write_text(preprocessor)
    torch.save({f"wav2vec2.{k}": v for k, v in wav2vec2_weights.items()}, folder / "pytorch_model.bin")
    return target
