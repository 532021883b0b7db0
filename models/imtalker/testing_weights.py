"""Deterministic test weights rebuilt from the conformance manifests (the fixtures' README rule).

Used by the conformance tests, the end-to-end engine test and the benchmark: the real IMTalker
checkpoints cannot be downloaded here, so these weights stand in for them with the same keys.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path

import numpy as np
import torch


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


def write_checkpoint_folder(conformance_dir: Path, target: Path) -> Path:
    """Write the manifest weights as ``renderer.ckpt``, ``generator.ckpt`` and
    ``wav2vec2-base-960h/`` exactly as the published checkpoints nest them."""
    target.mkdir(parents=True, exist_ok=True)
    renderer = {f"gen.{k}": v for k, v in renderer_state(conformance_dir).items()}
    torch.save({"state_dict": renderer, "epoch": 0}, target / "renderer.ckpt")
    generator = {f"model.{k}": v for k, v in generator_state(conformance_dir).items()}
    torch.save({"state_dict": generator, "epoch": 0}, target / "generator.ckpt")
    folder = target / "wav2vec2-base-960h"
    folder.mkdir(exist_ok=True)
    config = json.loads((conformance_dir / "wav2vec2_config.json").read_text())
    config["architectures"] = ["Wav2Vec2ForCTC"]
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    preprocessor = (conformance_dir / "wav2vec2_preprocessor_config.json").read_text()
    (folder / "preprocessor_config.json").write_text(preprocessor)
    (folder / "feature_extractor_config.json").write_text(preprocessor)
    torch.save(
        {f"wav2vec2.{k}": v for k, v in wav2vec2_state(conformance_dir).items()}, folder / "pytorch_model.bin"
    )
    return target
