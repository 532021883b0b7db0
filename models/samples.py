"""Bundled sample inputs so that the default run works with nothing supplied.

sample_face.jpg is Grace Hopper's public-domain portrait (as shipped by matplotlib's sample data);
sample_speech.wav was synthesized here with espeak-ng (16 kHz mono, ~11 s, with pauses).
"""

from __future__ import annotations

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
SAMPLE_FACE = ASSETS_DIR / "sample_face.jpg"
SAMPLE_SPEECH = ASSETS_DIR / "sample_speech.wav"
