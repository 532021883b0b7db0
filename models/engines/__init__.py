"""Engine factory: name → Engine instance, importing engine modules only when asked for.

Why lazy: the CPU engine needs no weights and must always work; the IMTalker engine pulls in
torch and checkpoints. A server started with ``--engine cpu`` never imports the neural stack.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from models.engines.base import Engine
from models.errors import EngineUnavailableError

ENGINE_NAMES = ("cpu", "imtalker")


def create_engine(
    name: str,
    weights_dir: Path | None = None,
    device: str | None = None,
    cpu_lookahead_frames: int | None = None,
    cpu_processes: int = 0,
    imtalker_dtype: str = "fp32",
    imtalker_compile: str | None = None,
    imtalker_first_window_frames: int = 50,
) -> Engine:
    """Build the named engine or raise EngineUnavailableError saying what is missing.
    ``cpu_lookahead_frames``: the CPU engine's right context (None: its default, 5 frames);
    ``cpu_processes``: worker processes its streams run in (0: in-process);
    ``imtalker_*``: the neural engine's precision (fp32/bf16/fp16 autocast), ``torch.compile`` mode
    of its fixed-shape renderer, and the length of a session's first motion window (10–50 frames:
    shorter starts sooner; later windows stay 2 s)."""
    key = name.strip().lower()
    if key == "cpu":
        try:
            module = importlib.import_module("models.engines.cpu")
        except ImportError as e:
            hint = ""
            if e.name == "mediapipe":  # not a declared dependency of the wheel: docs/DEPENDENCIES.md
                hint = "; install it with: pip install --no-deps mediapipe==0.10.21"
            raise EngineUnavailableError(f"the CPU engine cannot be imported: {e}{hint}") from e
        if cpu_lookahead_frames is None:
            return module.CpuEngine(processes=cpu_processes)
        return module.CpuEngine(lookahead_frames=cpu_lookahead_frames, processes=cpu_processes)
    if key == "imtalker":
        try:
            module = importlib.import_module("models.imtalker.engine")
        except ImportError as e:
            raise EngineUnavailableError(
                f"the IMTalker engine is not available ({e}); install the neural requirements "
                "and pass --weights-dir with its checkpoints, or use --engine cpu"
            ) from e
        try:
            return module.load_engine(
                weights_dir,
                device=device,
                dtype=imtalker_dtype,
                compile_mode=imtalker_compile,
                first_window_frames=imtalker_first_window_frames,
            )
        except EngineUnavailableError:
            raise
        except (FileNotFoundError, RuntimeError, OSError) as e:
            raise EngineUnavailableError(f"the IMTalker engine cannot start: {e}") from e
    raise EngineUnavailableError(f"unknown engine {name!r}; choose one of {', '.join(ENGINE_NAMES)}")
