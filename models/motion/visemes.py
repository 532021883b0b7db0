"""Phone → viseme targets (mouth shape classes), and their coarticulated blend.

A viseme here is three numbers the renderer understands: how open the phone wants the jaw
(relative, scaled later by loudness), lip width (-1 rounded .. +1 spread) and lip press (bilabial
closure). Loudness sets *how much* the mouth moves; the phone only sets *which shape* it takes,
so mislabelled or non-English speech degrades to loudness-driven motion instead of wrong motion.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Viseme:
    openness: float  # 0..1 relative jaw opening the phone wants
    width: float  # -1 rounded .. +1 spread
    press: float  # 0..1 lips pressed (m, b, p)


NEUTRAL = Viseme(openness=0.5, width=0.0, press=0.0)
"""Used for silence, noise and frames no hypothesis covers: loudness alone drives the mouth."""

_CLASSES: list[tuple[Viseme, tuple[str, ...]]] = [
    (Viseme(1.00, 0.15, 0.0), ("AA", "AE", "AH", "AY", "AW")),  # open vowels
    (Viseme(0.80, -0.20, 0.0), ("AO", "ER", "EH")),  # mid vowels
    (Viseme(0.55, 0.75, 0.0), ("IY", "IH", "EY")),  # spread "ee"
    (Viseme(0.55, -0.85, 0.0), ("UW", "UH", "OW", "OY", "W")),  # rounded "oo/w"
    (Viseme(0.10, 0.0, 1.0), ("M", "B", "P")),  # bilabials: lips pressed
    (Viseme(0.30, 0.10, 0.45), ("F", "V")),  # labiodentals: lower lip to teeth
    (Viseme(0.40, 0.35, 0.0), ("TH", "DH", "T", "D", "N", "L")),  # tongue-tip
    (Viseme(0.40, 0.50, 0.0), ("S", "Z")),  # sibilants: teeth close, spread
    (Viseme(0.45, -0.55, 0.0), ("SH", "ZH", "CH", "JH", "R")),  # protruded
    (Viseme(0.55, 0.10, 0.0), ("K", "G", "NG", "HH", "Y")),  # back consonants
]
BILABIALS = frozenset({"M", "B", "P"})
LABIODENTALS = frozenset({"F", "V"})
PHONE_VISEMES: dict[str, Viseme] = {p: v for v, phones in _CLASSES for p in phones}

COARTICULATION_WEIGHTS: tuple[float, ...] = (0.10, 0.20, 0.40, 0.20, 0.10)
"""Frames n-2..n+2: each mouth shape leaks ~80 ms into its neighbours (anticipation and carry-over)."""


def viseme_for(phone: str | None) -> Viseme:
    return PHONE_VISEMES.get(phone or "", NEUTRAL)


def blend(visemes: list[Viseme]) -> Viseme:
    """Weighted mix of the frames around n (``len(visemes) == len(COARTICULATION_WEIGHTS)``).

    Lip press is not averaged away: a bilabial must still reach closure, so its own frame keeps
    at least 70 % of its press even when its neighbours are open.
    """
    w = COARTICULATION_WEIGHTS
    openness = sum(wi * v.openness for wi, v in zip(w, visemes, strict=True))
    width = sum(wi * v.width for wi, v in zip(w, visemes, strict=True))
    press = sum(wi * v.press for wi, v in zip(w, visemes, strict=True))
    centre = visemes[len(visemes) // 2]
    return Viseme(openness=openness, width=width, press=max(press, 0.7 * centre.press))
