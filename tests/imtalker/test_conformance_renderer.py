"""Renderer stages against the reference: encode, motion maps, decode (strict and statistical)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.imtalker.renderer import IMTRenderer

FEATURE_ATOL = 5e-4
VECTOR_ATOL = 1e-5
MAP_ATOL = 1e-4
DECODER_ATOL = (2e-3, 5e-3, 2e-2, 5e-2, 1e-1)


def probe_views(x: torch.Tensor) -> dict[str, np.ndarray]:
    """The fixtures' probe of a (1, C, H, W) map: per-channel mean/std and two 16x16 crops."""
    a = x.detach().numpy()
    h = a.shape[2] // 2
    return {
        "chan_mean": a.mean(axis=(2, 3)),
        "chan_std": a.std(axis=(2, 3)),
        "crop_tl": a[:, :64, :16, :16],
        "crop_c": a[:, :64, h - 8 : h + 8, h - 8 : h + 8],
    }


def check_probe(check_close, stage: str, value: torch.Tensor, stored: dict, atol: float) -> None:
    for part, got in probe_views(value).items():
        check_close(f"{stage}.{part}", got, stored[f"{stage}__{part}"], atol)


def image_tensor(stored: dict) -> torch.Tensor:
    return torch.from_numpy(stored["image_u8_hwc"]).permute(2, 0, 1)[None].float() / 255.0


@pytest.mark.slow
def test_encode_portrait(renderer: IMTRenderer, golden, check_close) -> None:
    enc = golden("renderer_encode")
    portrait = renderer.encode_portrait(image_tensor(enc))
    for level, value in enumerate(portrait.appearance):
        check_close(f"renderer.f_r_{level}", value, enc[f"f_r_{level}"], FEATURE_ATOL)
    check_close("renderer.g_r", portrait.identity, enc["g_r"], VECTOR_ATOL)
    check_close("renderer.t_r", portrait.motion_code, enc["t_r"], VECTOR_ATOL)


def test_motion_code_to_maps(renderer: IMTRenderer, golden, check_close) -> None:
    dec = golden("renderer_decode")
    g_r = torch.from_numpy(dec["g_r"])
    t_c = torch.from_numpy(dec["t_r"]) + torch.from_numpy(dec["motion_offset"]) * 0.1
    check_close("renderer.t_c", t_c, dec["t_c"], VECTOR_ATOL)
    for which in ("r", "c"):
        adapted = renderer.adapt(torch.from_numpy(dec[f"t_{which}"]), g_r)
        check_close(f"renderer.ta_{which}", adapted, dec[f"ta_{which}"], VECTOR_ATOL)
        for level, value in enumerate(renderer.motion_maps(torch.from_numpy(dec[f"t_{which}"]), g_r)):
            check_close(f"renderer.ma_{which}_{level}", value, dec[f"ma_{which}_{level}"], MAP_ATOL)


def _decode(renderer: IMTRenderer, golden, inject: bool) -> tuple[torch.Tensor, dict]:
    enc, dec = golden("renderer_encode"), golden("renderer_decode")
    current = [torch.from_numpy(dec[f"ma_c_{i}"]) for i in range(4)]
    reference = [torch.from_numpy(dec[f"ma_r_{i}"]) for i in range(4)]
    appearance = [torch.from_numpy(enc[f"f_r_{i}"]) for i in range(6)]
    best_key = torch.from_numpy(dec["attn3_top1_idx"]).long() if inject else None
    probes: dict[str, torch.Tensor] = {}
    out = renderer.decode(current, reference, appearance, best_key=best_key, probes=probes)
    return out, probes


@pytest.mark.slow
def test_decode_strict_with_injected_fine_indices(renderer: IMTRenderer, golden, check_close) -> None:
    dec = golden("renderer_decode")
    out, probes = _decode(renderer, golden, inject=True)
    for level in (0, 1):
        check_close(f"renderer.align_{level}", probes[f"align_{level}"], dec[f"align_{level}"], MAP_ATOL)
        check_close(
            f"renderer.attn{level}_headmean",
            probes[f"attn{level}_headmean"],
            dec[f"attn{level}_headmean"],
            1e-5,
        )
    for level in (2, 3):
        check_probe(check_close, f"align_{level}", probes[f"align_{level}"], dec, MAP_ATOL)
    for level in (4, 5):  # exact copies of f_r blocks once the indices agree
        check_probe(check_close, f"align_{level}", probes[f"align_{level}"], dec, FEATURE_ATOL)
    for part in ("upconv", "resblock", "attn"):
        check_close(f"renderer.dec0_{part}", probes[f"dec0_{part}"], dec[f"dec0_{part}"], DECODER_ATOL[0])
    for stage in range(1, 5):
        for part in ("upconv", "resblock", "attn"):
            value = probes[f"dec{stage}_{part}"]
            if stage == 4 and part == "attn":
                # The reference's final nn.LeakyReLU(0.2) runs in place, so its stored probe of the
                # last attention output was overwritten by the activated tensor.
                value = torch.nn.functional.leaky_relu(value, 0.2)
            check_probe(check_close, f"dec{stage}_{part}", value, dec, DECODER_ATOL[stage])
    check_probe(
        check_close,
        "dec_final_conv_prepixelshuffle",
        probes["dec_final_conv_prepixelshuffle"],
        dec,
        DECODER_ATOL[4],
    )
    check_close("renderer.out (injected idx)", out, dec["out"], 1e-2, mean_atol=1e-3)


@pytest.mark.slow
def test_decode_statistical_without_injection(renderer: IMTRenderer, golden, check_close) -> None:
    dec = golden("renderer_decode")
    out, probes = _decode(renderer, golden, inject=False)
    ours = probes["attn3_top1_idx"].numpy()
    robust = dec["attn3_top12_gap"] >= 1e-7
    disagreements = int(((ours != dec["attn3_top1_idx"]) & robust).sum())
    print(
        f"[imtalker conformance] level-3 argmax: {disagreements} robust-row disagreements, "
        f"{int((ours != dec['attn3_top1_idx']).sum())} total"
    )
    assert disagreements == 0
    diff = np.abs(out.numpy() - dec["out"])
    assert diff.mean() <= 3e-3
    assert (diff > 2e-2).mean() <= 0.05
    check_close("renderer.out (own idx)", out, dec["out"], 1.0, mean_atol=3e-3)
