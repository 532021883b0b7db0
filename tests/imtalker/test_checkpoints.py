"""The real-file loader: nesting, strict keys, older-generation detection, incomplete folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from models.errors import EngineUnavailableError
from models.imtalker.checkpoints import CheckpointError, load_generator, load_models, load_renderer
from models.imtalker.engine import load_engine
from models.imtalker.testing_weights import manifest_mismatches

pytestmark = pytest.mark.slow


def test_saved_modules_load_back_through_real_file_loader(
    checkpoint_folder: Path, conformance_dir: Path, renderer, generator, audio_encoder
) -> None:
    audio, loaded_generator, loaded_renderer = load_models(checkpoint_folder)
    assert manifest_mismatches(conformance_dir / "renderer_manifest.json", loaded_renderer.state_dict()) == []
    assert (
        manifest_mismatches(conformance_dir / "generator_manifest.json", loaded_generator.state_dict()) == []
    )
    for name, value in audio_encoder.wav2vec2.state_dict().items():
        assert torch.equal(audio.wav2vec2.state_dict()[name], value), name


def test_lightning_nesting_with_model_key_and_extra_entries(tmp_path: Path, generator, renderer) -> None:
    nested = {"state_dict": {"model": {f"model.{k}": v for k, v in generator.state_dict().items()}}}
    torch.save(nested, tmp_path / "generator.ckpt")
    loaded = load_generator(tmp_path / "generator.ckpt")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in generator.state_dict().items())
    state = {f"gen.{k}": v for k, v in renderer.state_dict().items()}
    state["disc.conv.weight"] = torch.zeros(1)  # the training discriminator is ignored
    torch.save({"state_dict": state, "ema_state_dict": {}}, tmp_path / "renderer.ckpt")
    load_renderer(tmp_path / "renderer.ckpt")


def test_missing_and_unexpected_keys_are_named(tmp_path: Path, generator) -> None:
    state = {f"model.{k}": v for k, v in generator.state_dict().items()}
    del state["model.fmt.blocks.3.attn.qkv.weight"]
    state["model.fmt.extra_head.weight"] = torch.zeros(2)
    torch.save({"state_dict": state}, tmp_path / "generator.ckpt")
    with pytest.raises(CheckpointError) as err:
        load_generator(tmp_path / "generator.ckpt")
    assert "fmt.blocks.3.attn.qkv.weight" in str(err.value) and "fmt.extra_head.weight" in str(err.value)


def test_older_generations_are_detected(tmp_path: Path, generator, renderer) -> None:
    state = {f"model.{k}": v for k, v in generator.state_dict().items()}
    state["model.fmt.pos_embed"] = torch.zeros(1, 60, 512)
    torch.save({"state_dict": state}, tmp_path / "generator.ckpt")
    with pytest.raises(CheckpointError, match="older generator generation"):
        load_generator(tmp_path / "generator.ckpt")
    old = {f"gen.{k}": v for k, v in renderer.state_dict().items() if "down_block_0." not in k}
    torch.save({"state_dict": old}, tmp_path / "renderer.ckpt")
    with pytest.raises(CheckpointError, match="older renderer generation"):
        load_renderer(tmp_path / "renderer.ckpt")


def test_incomplete_folder_is_a_clear_engine_error(tmp_path: Path, checkpoint_folder: Path) -> None:
    shutil.copy(checkpoint_folder / "generator.ckpt", tmp_path / "generator.ckpt")
    with pytest.raises(EngineUnavailableError, match=r"renderer\.ckpt.*wav2vec2-base-960h/config\.json"):
        load_engine(tmp_path, device="cpu")
    with pytest.raises(EngineUnavailableError, match="does not exist"):
        load_engine(tmp_path / "nope")
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "renderer.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_renderer(tmp_path / "garbage" / "renderer.ckpt")
