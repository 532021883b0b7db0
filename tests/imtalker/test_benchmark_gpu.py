"""benchmarks/imtalker_gpu.py runs end to end at the tiny size and prints every figure.

Why: the benchmark is meant to be run later, unattended, on a GPU machine as one prepared
script; this keeps it from rotting on machines without one (CPU, tiny size, ~30-60 s).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "imtalker_gpu.py"
NUMBER = r"([0-9]+(?:\.[0-9]+)?)"


def run_benchmark(conformance_dir: Path, *args: str) -> str:
    env = {**os.environ, "FACESTREAM_CONFORMANCE_DIR": str(conformance_dir), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--threads", "1", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def figure(output: str, pattern: str) -> float:
    match = re.search(pattern, output)
    assert match, f"no line matching {pattern!r} in:\n{output}"
    return float(match.group(1))


def assert_common_figures(output: str) -> None:
    assert figure(output, rf"single-session frames/s: {NUMBER}") > 0
    assert figure(output, rf"batched frames/s at 2 sessions: {NUMBER} total") > 0
    assert figure(output, rf"p99 window latency \(1 session\): {NUMBER} ms") > 0
    assert figure(output, rf"p99 round latency {NUMBER} ms") > 0
    assert figure(output, rf"per-session state \(portrait encoding \+ context\): {NUMBER} MiB") > 0
    full = figure(output, rf"first-frame latency \(2 s first window\): {NUMBER} ms")
    short = figure(output, rf"first-frame latency \(10-frame first window\): {NUMBER} ms")
    assert 0 < short < full  # the short first window renders 10 frames instead of 50
    assert "real-time sessions (p99 round < 2 s):" in output


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_benchmark_runs_on_cpu_at_tiny_size(conformance_dir: Path) -> None:
    output = run_benchmark(conformance_dir, "--device", "cpu")
    assert_common_figures(output)
    assert "VRAM per session at 2 sessions: n/a on CPU" in output
    assert "device cpu, dtype fp32" in output


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.timeout(600)
def test_benchmark_runs_on_cuda_at_tiny_size(conformance_dir: Path) -> None:
    output = run_benchmark(
        conformance_dir, "--device", "cuda", "--dtype", "bf16", "--compile", "reduce-overhead"
    )
    assert_common_figures(output)
    assert figure(output, rf"VRAM per session at 2 sessions: {NUMBER} MiB") > 0
