"""One generator per idle component, derived from the session seed (any int, negative included)."""

from __future__ import annotations

import numpy as np


def component_rng(seed: int, component: int) -> np.random.Generator:
    """Independent stream per component so adding a component never shifts another one's draws."""
    s = int(seed)
    return np.random.default_rng([s & 0xFFFFFFFF, (s >> 32) & 0xFFFFFFFF, 1 if s < 0 else 0, component])
