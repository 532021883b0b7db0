"""The manifest rule rebuilds every tensor bit-exactly, and our modules have exactly those keys."""

from __future__ import annotations

from pathlib import Path

from models.imtalker.testing_weights import manifest_mismatches


def test_renderer_weights_and_formula_buffers_match_manifest(renderer, conformance_dir: Path) -> None:
    assert manifest_mismatches(conformance_dir / "renderer_manifest.json", renderer.state_dict()) == []


def test_generator_weights_and_rope_buffer_match_manifest(generator, conformance_dir: Path) -> None:
    assert manifest_mismatches(conformance_dir / "generator_manifest.json", generator.state_dict()) == []


def test_wav2vec2_weights_match_manifest_under_legacy_names(audio_encoder, conformance_dir: Path) -> None:
    state = audio_encoder.wav2vec2.state_dict()
    conv = "encoder.pos_conv_embed.conv."
    state[conv + "weight_g"] = state.pop(conv + "parametrizations.weight.original0")
    state[conv + "weight_v"] = state.pop(conv + "parametrizations.weight.original1")
    assert manifest_mismatches(conformance_dir / "wav2vec2_manifest.json", state) == []
