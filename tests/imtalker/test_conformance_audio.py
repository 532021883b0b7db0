"""Audio stage: normalisation, 25 fps resampling, wav2vec2 features and the audio projection."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.imtalker.audio_encoder import frame_count, normalize_waveform, pad_to_frames

CASES = ("A1_2s", "A2_1p3s", "A3_3s", "A4_2s_next")


def reference_waveform(start: int, stop: int) -> np.ndarray:
    """The fixtures' synthetic voice-like signal (README), computed in float64 then cast."""
    t = np.arange(start, stop, dtype=np.float64) / 16000.0
    env = 0.3 + 0.7 * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t - np.pi / 2))
    tone = (
        0.6 * np.sin(2 * np.pi * 220 * t)
        + 0.25 * np.sin(2 * np.pi * 660 * t + 0.7)
        + 0.15 * np.sin(2 * np.pi * (150 * t + 400 * t**2))
    )
    return (0.4 * env * tone).astype(np.float32)


@pytest.mark.parametrize(("case", "span"), [("A1_2s", (0, 32000)), ("A4_2s_next", (32000, 64000))])
def test_waveform_recipe_matches_stored_wave(golden, check_close, case, span) -> None:
    check_close(
        f"audio.{case}.wave", reference_waveform(*span), golden("audio_encoder")[f"{case}__wave"], 1e-7
    )


@pytest.mark.parametrize("case", CASES)
def test_features_and_projection(audio_encoder, generator, golden, check_close, case) -> None:
    stored = golden("audio_encoder")
    values = normalize_waveform(stored[f"{case}__wave"])
    check_close(f"audio.{case}.input_values", values[None], stored[f"{case}__input_values"], 0.0)
    frames = frame_count(values.shape[0])
    assert frames == int(stored[f"{case}__seq_len"])
    padded = pad_to_frames(torch.from_numpy(values)[None], frames)
    assert padded.shape[-1] == int(stored[f"{case}__padded_input_len"])
    probes: dict[str, torch.Tensor] = {}
    features = audio_encoder(torch.from_numpy(values)[None], frames, probes)
    check_close(
        f"audio.{case}.conv_features", probes["conv_features"], stored[f"{case}__conv_features"], 1e-4
    )
    check_close(
        f"audio.{case}.interp_features", probes["interp_features"], stored[f"{case}__interp_features"], 1e-4
    )
    if case == "A1_2s":
        check_close("audio.A1_2s.feature_projection", probes["feature_projection_out"],
                    stored["A1_2s__feature_projection_out"], 1e-4)  # fmt: skip
    check_close(f"audio.{case}.last_hidden_state", features, stored[f"{case}__last_hidden_state"], 1e-4)
    projected = generator.audio_projection(features)
    check_close(f"audio.{case}.audio_projection", projected, stored[f"{case}__audio_projection"], 1e-4)
