"""Lip closure (M, B, P) from the sound itself, so that loud speech cannot hold the lips apart.

Why acoustics and not only the phone recogniser: measured on forced-aligned speech (several
espeak-ng voices, benchmarks/lipsync_eval.py), the streaming allphone decoder labels only about a
quarter of the bilabials as M/B/P — mostly it says SIL, L or T there — while the sound of a lip
closure is distinctive: with the lips shut the mouth radiates almost nothing, so a bilabial frame
is a *dip* below its neighbours (stop closure: near-silence or a low voice bar; the nasal murmur
of M: ~15 dB down and low-pass) and carries no frication (unlike S, F, T bursts). A dip of 6 dB
or more below the loudest frame within ±2 frames, without high-band energy, finds ~90 % of the
aligned bilabials and never closes a whole open vowel (it also closes some D/G/N, which looks like
brisk articulation rather than a wrong shape).

Everything is per 40 ms block and depends on the audio prefix plus the stream's lookahead only,
so it is chunk-invariant. Cost: one 640-point real FFT per block (~15 µs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.types import ENGINE_SAMPLE_RATE, SAMPLES_PER_FRAME

DIP_SPAN = 2
"""Frames either side whose loudest level the dip is measured against (within the lookahead)."""
DIP_DB = (4.0, 7.0)
"""A dip of less than 4 dB is no closure, one of 7 dB or more is a full closure (smooth between)."""
MURMUR_DARKER_DB = (6.0, 10.0)
"""How much darker (less high band) than its open neighbours a frame must be to be an M murmur."""
QUIET_SIDE_DB = 10.0
"""A neighbour this much quieter than the frame is a stop gap or a pause, not an open sound."""
FRICATION_DB = (-8.0, -12.0)
"""High-band (> 3 kHz) share of a closure frame's energy: above -8 dB it is frication (or an open
vowel of a high voice), below -12 dB it can be a closure."""
SIDE_FRICATION_DB = -5.5
"""A neighbour this bright (S, T, TH, K bursts: -6..0 dB; vowels, even of high voices: < -7 dB) is
an obstruent, not the open sound a closure is a valley against."""
AUDIBLE_DB = -70.0
"""Below this the frame is silence: the rest pose handles it, not a closure."""

_WINDOW = np.hanning(SAMPLES_PER_FRAME).astype(np.float32)
_HIGH = np.fft.rfftfreq(SAMPLES_PER_FRAME, 1.0 / ENGINE_SAMPLE_RATE) > 3000.0


@dataclass(frozen=True, slots=True)
class BlockSpectrum:
    db: float  # windowed block energy, dB
    high_db: float  # share of it above 3 kHz, dB (0 = all of it)


def block_spectrum(block: np.ndarray) -> BlockSpectrum:
    power = np.abs(np.fft.rfft(block * _WINDOW)) ** 2
    total = float(power.sum()) + 1e-12
    high = float(power[_HIGH].sum()) + 1e-12
    return BlockSpectrum(db=10.0 * np.log10(total / SAMPLES_PER_FRAME), high_db=10.0 * np.log10(high / total))


def _ramp(e0: float, e1: float, x: float) -> float:
    t = min(max((x - e0) / (e1 - e0), 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


def _open(side: BlockSpectrum, here: BlockSpectrum) -> bool:
    """Whether a neighbour is open sound (a vowel, a glide) rather than an obstruent or a pause
    (frication, or far quieter than the frame itself): only open sound makes a frame a valley."""
    return side.high_db < SIDE_FRICATION_DB and side.db > here.db - QUIET_SIDE_DB


def acoustic_closure(spectra: dict[int, BlockSpectrum], voiced: dict[int, bool], n: int) -> float:
    """0..1 evidence that the lips are shut at frame ``n`` (needs blocks n-2..n+2 where they exist).

    The frame must be a *valley*: below the loudest frame on each side. A one-sided drop is the
    onset or the fading tail of a vowel, not a closure. A side that is silence (voice gate shut)
    or frication does not count against it: the lips are together in the pause, and an M right
    after one ("my", "some", "at my") still closes them.
    """
    here = spectra.get(n)
    if here is None or here.db < AUDIBLE_DB or not voiced.get(n, False):
        return 0.0
    sides = []
    for ks in (range(n - DIP_SPAN, n), range(n + 1, n + DIP_SPAN + 1)):
        around = [spectra[k] for k in ks if k in spectra and voiced.get(k, False) and _open(spectra[k], here)]
        if around:
            sides.append(max(around, key=lambda s: s.db))
    if not sides:
        return 0.0
    dip = min(s.db for s in sides) - here.db
    darker = min(s.high_db for s in sides) - here.high_db
    # a nasal murmur is only a few dB down but much darker than the vowel it opens into
    valley = max(_ramp(DIP_DB[0], DIP_DB[1], dip), _ramp(*MURMUR_DARKER_DB, darker) * _ramp(1.0, 3.0, dip))
    return valley * _ramp(FRICATION_DB[0], FRICATION_DB[1], here.high_db)
