"""IMTalker fixtures: modules loaded with the manifest weights, golden arrays, an error recorder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from models.imtalker.audio_encoder import AudioEncoder, build_wav2vec2
from models.imtalker.generator import FMGenerator
from models.imtalker.renderer import IMTRenderer
from models.imtalker.testing_weights import generator_state, renderer_state, wav2vec2_state

STAGE_ERRORS: dict[str, tuple[float, float]] = {}


@pytest.fixture(scope="session", autouse=True)
def _deterministic_cpu() -> None:
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture(scope="session")
def renderer(conformance_dir: Path) -> IMTRenderer:
    model = IMTRenderer().eval()
    result = model.load_state_dict(renderer_state(conformance_dir), strict=False)
    assert not result.unexpected_keys and all(_is_formula_buffer(k) for k in result.missing_keys)
    return model


@pytest.fixture(scope="session")
def generator(conformance_dir: Path) -> FMGenerator:
    model = FMGenerator().eval()
    result = model.load_state_dict(generator_state(conformance_dir), strict=False)
    assert not result.unexpected_keys and result.missing_keys == ["fmt.rotary_emb.inv_freq"]
    return model


@pytest.fixture(scope="session")
def audio_encoder(conformance_dir: Path) -> AudioEncoder:
    wav2vec2 = build_wav2vec2(conformance_dir / "wav2vec2_config.json")
    wav2vec2.load_state_dict(wav2vec2_state(conformance_dir), strict=True)
    return AudioEncoder(wav2vec2).eval()


def _is_formula_buffer(key: str) -> bool:
    return key.endswith(("kernel", "relative_position_index", "attn_mask"))


@pytest.fixture(scope="session")
def golden(conformance_dir: Path) -> Callable[[str], dict[str, np.ndarray]]:
    cache: dict[str, dict[str, np.ndarray]] = {}

    def load(name: str) -> dict[str, np.ndarray]:
        if name not in cache:
            cache[name] = dict(np.load(conformance_dir / f"{name}.npz"))
        return cache[name]

    return load


@pytest.fixture
def check_close(record_property) -> Callable[..., None]:
    """check_close(stage, got, want, atol, mean_atol=None): asserts and records max/mean error."""

    def check(stage: str, got, want, atol: float, mean_atol: float | None = None) -> None:
        got_np = got.detach().cpu().numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
        want_np = np.asarray(want)
        assert got_np.shape == want_np.shape, f"{stage}: shape {got_np.shape} != {want_np.shape}"
        diff = np.abs(got_np.astype(np.float64) - want_np.astype(np.float64))
        max_err, mean_err = float(diff.max()), float(diff.mean())
        STAGE_ERRORS[stage] = (max_err, mean_err)
        record_property(stage, f"max {max_err:.3g} mean {mean_err:.3g}")
        print(f"[imtalker conformance] {stage}: max {max_err:.3g} mean {mean_err:.3g} (atol {atol:g})")
        assert max_err <= atol, f"{stage}: max abs error {max_err:.3g} > {atol:g}"
        if mean_atol is not None:
            assert mean_err <= mean_atol, f"{stage}: mean abs error {mean_err:.3g} > {mean_atol:g}"

    return check


def pytest_terminal_summary(terminalreporter) -> None:
    if STAGE_ERRORS:
        terminalreporter.section("IMTalker conformance errors (max / mean abs)")
        for stage, (max_err, mean_err) in STAGE_ERRORS.items():
            terminalreporter.write_line(f"{stage:40s} {max_err:10.3g} {mean_err:10.3g}")


@pytest.fixture(scope="session")
def checkpoint_folder(conformance_dir: Path, tmp_path_factory) -> Path:
    """The manifest weights written as renderer.ckpt / generator.ckpt / wav2vec2-base-960h/."""
    from models.imtalker.testing_weights import write_checkpoint_folder

    return write_checkpoint_folder(conformance_dir, tmp_path_factory.mktemp("imtalker_weights"))
