"""bf16 / fp16 autocast (the engine's ``dtype``) against the fp32 conformance vectors.

Why: half precision is the main GPU speed lever, and its error must be known and bounded before
it is offered as a setting. CPU autocast runs matmuls, convolutions *and* softmax/layer norm in
the low precision (CUDA autocast keeps the latter two in fp32), so these errors are an upper
bound for the GPU path. Each tolerance is about 2x the error measured on CPU (2 threads, torch
2.13; the measured values are in the comments and /work/notes/issue19.md); fp32 itself stays at
the conformance tests' much tighter tolerances.

The renderer's output error is large with the *generated* weights: their frame decoder
amplifies any rounding about 2x per stage (the fixtures' own fp32-vs-fp64 report shows the
same ~300x growth from f_r to the frame), so the output bound is a regression bound for these
weights, not a quality statement about the published checkpoints.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.imtalker.audio_encoder import frame_count
from models.imtalker.generator import CONDITIONS, FMGenerator, WindowContext
from models.imtalker.renderer import IMTRenderer

# dtype -> stage -> (max abs, mean abs) allowed; measured max / mean in the comments.
TOLERANCES: dict[str, dict[str, tuple[float, float]]] = {
    "bf16": {
        "audio.last_hidden_state": (0.2, 0.03),  # 0.081 / 0.012
        "audio.audio_projection": (0.12, 0.015),  # 0.048 / 0.0060
        "fmt.cfg2_out": (0.25, 0.05),  # 0.10 / 0.021
        "sample.S1.codes": (0.15, 0.04),  # 0.070 / 0.016
        "sample.S6.codes": (0.2, 0.05),  # 0.089 / 0.021
        "renderer.f_r": (1.5, 0.1),  # worst level 0.69 / 0.050
        "renderer.g_r": (0.03, 0.008),  # 0.014 / 0.0033
        "renderer.t_r": (0.012, 0.004),  # 0.0052 / 0.0017
        "renderer.ma_c": (0.12, 0.008),  # worst level 0.055 / 0.0033
        # output is a sigmoid in (0, 1): only the mean is a real bound
        "renderer.out (injected idx)": (1.0, 0.2),  # 0.61 / 0.084
    },
    "fp16": {
        "audio.last_hidden_state": (0.025, 0.004),  # 0.010 / 0.0015
        "audio.audio_projection": (0.015, 0.002),  # 0.0067 / 0.00071
        "fmt.cfg2_out": (0.025, 0.006),  # 0.011 / 0.0026
        "sample.S1.codes": (0.02, 0.005),  # 0.0093 / 0.0019
        "sample.S6.codes": (0.025, 0.006),  # 0.012 / 0.0023
        "renderer.f_r": (0.2, 0.02),  # worst level 0.098 / 0.0077
        "renderer.g_r": (0.004, 0.001),  # 0.0016 / 0.00045
        "renderer.t_r": (0.002, 0.0005),  # 0.00079 / 0.00020
        "renderer.ma_c": (0.01, 0.001),  # worst level 0.0045 / 0.00039
        "renderer.out (injected idx)": (0.6, 0.08),  # 0.30 / 0.033
    },
}
AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}
DTYPES = pytest.mark.parametrize("dtype", list(AUTOCAST))


def half(dtype: str) -> torch.autocast:
    return torch.autocast(device_type="cpu", dtype=AUTOCAST[dtype])


def check(check_close, dtype: str, stage: str, got: torch.Tensor, want: np.ndarray, key: str = "") -> None:
    max_tol, mean_tol = TOLERANCES[dtype][key or stage]
    check_close(f"{dtype}.{stage}", got.float(), want, max_tol, mean_atol=mean_tol)


@DTYPES
def test_audio_encoder(dtype: str, audio_encoder, generator: FMGenerator, golden, check_close) -> None:
    stored = golden("audio_encoder")
    values = torch.from_numpy(stored["A1_2s__input_values"])
    with torch.no_grad(), half(dtype):
        features = audio_encoder(values, frame_count(values.shape[-1]))
        projected = generator.audio_projection(features)
    check(check_close, dtype, "audio.last_hidden_state", features, stored["A1_2s__last_hidden_state"])
    check(check_close, dtype, "audio.audio_projection", projected, stored["A1_2s__audio_projection"])


@DTYPES
def test_transformer_forward(dtype: str, generator: FMGenerator, golden, check_close) -> None:
    stored = golden("generator_fmt_forward")
    t = lambda key: torch.from_numpy(stored[key])  # noqa: E731
    cond = {name: t(f"nonzero__{name}") for name in CONDITIONS}
    context = WindowContext(t("prev_x"), *(t(f"nonzero__prev_{n}") for n in ("a", "pose", "cam", "gaze")))
    with torch.no_grad(), half(dtype):
        velocity = generator.velocity(t("t"), t("x"), t("ref_x"), cond, context, 2.0)
    check(check_close, dtype, "fmt.cfg2_out", velocity, stored["nonzero__cfg2_out"])


@pytest.mark.slow
@DTYPES
@pytest.mark.parametrize(("case", "nfe", "cfg_scale"), [("S1", 4, 2.0), ("S6", 10, 3.0)])
def test_sample(dtype: str, generator, audio_encoder, golden, check_close, case, nfe, cfg_scale) -> None:
    """The whole chain the engine runs per window (audio encoder + projections + ODE)."""
    stored = golden("generator_sample")
    values = torch.from_numpy(golden("audio_encoder")["A1_2s__input_values"])
    with torch.no_grad(), half(dtype):
        cond = generator.project(audio_encoder(values, frame_count(values.shape[-1])))
        codes, _ = generator.sample(
            cond,
            torch.from_numpy(stored["ref_x"]),
            list(torch.from_numpy(stored[f"{case}__x0"])),
            nfe,
            cfg_scale,
        )
    assert codes.dtype == torch.float32  # the ODE state stays fp32 (half-precision velocities are promoted)
    check(check_close, dtype, f"sample.{case}.codes", codes, stored[f"{case}__sample"])


@pytest.mark.slow
@DTYPES
def test_renderer(dtype: str, renderer: IMTRenderer, golden, check_close) -> None:
    if dtype == "fp16" and not torch.ops.mkldnn._is_mkldnn_fp16_supported():
        # measured on an AMD EPYC with AVX512 but no AVX512-FP16/AMX-FP16: one 64-channel 3x3
        # convolution at 128² takes 9 s in fp16 against 0.08 s in fp32, so the renderer check
        # alone passes its 300 s timeout; the other fp16 stages (matmuls) still run here
        pytest.skip("this CPU has no native fp16 convolutions (oneDNN falls back to a ~100x slower path)")
    enc, dec = golden("renderer_encode"), golden("renderer_decode")
    image = torch.from_numpy(enc["image_u8_hwc"]).permute(2, 0, 1)[None].float() / 255.0
    with torch.no_grad(), half(dtype):
        portrait = renderer.encode_portrait(image)
        maps = renderer.motion_maps(torch.from_numpy(dec["t_c"]), torch.from_numpy(dec["g_r"]))
        current = [torch.from_numpy(dec[f"ma_c_{i}"]) for i in range(4)]
        reference = [torch.from_numpy(dec[f"ma_r_{i}"]) for i in range(4)]
        appearance = [torch.from_numpy(enc[f"f_r_{i}"]) for i in range(6)]
        best_key = torch.from_numpy(dec["attn3_top1_idx"]).long()
        out = renderer.decode(current, reference, appearance, best_key=best_key)
    for level, value in enumerate(portrait.appearance):
        check(check_close, dtype, f"renderer.f_r_{level}", value, enc[f"f_r_{level}"], "renderer.f_r")
    check(check_close, dtype, "renderer.g_r", portrait.identity, enc["g_r"])
    check(check_close, dtype, "renderer.t_r", portrait.motion_code, enc["t_r"])
    for level, value in enumerate(maps):
        check(check_close, dtype, f"renderer.ma_c_{level}", value, dec[f"ma_c_{level}"], "renderer.ma_c")
    check(check_close, dtype, "renderer.out (injected idx)", out, dec["out"])
