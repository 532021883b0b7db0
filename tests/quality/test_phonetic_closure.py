"""Phonetic lip closure against forced-aligned ground truth (espeak-ng speech of known text).

The clip's text is aligned by pocketsphinx's forced-alignment search (tests/support/lipsync.py),
independently of the engine's free phone decoding; every M/B/P must bring the commanded mouth
shut within ±1 frame however loud the speech, and open vowels must still open. The rendered
counterpart on re-detected, x264-decoded frames over 12 faces × 9 voices is
benchmarks/lipsync_eval.py; here two voices keep the suite fast (~10 s).
"""

from __future__ import annotations

import numpy as np
import pytest

from models.motion import MotionStream
from models.render.rig_mouth import JAW_DROP_IOD
from models.types import EngineParams, MotionFrame
from tests.support.lipsync import BILABIALS, OPEN_VOWELS, Phone, align, espeak, espeak_available, score

pytestmark = pytest.mark.skipif(
    not espeak_available(), reason="espeak-ng not installed (scripts/test.sh installs it)"
)

TEXT = "My mother made a big plum pie, but Bob baked maple bread. Please pass me both maps."
CASES = [("en-us", 160, 50), ("en-gb+m3", 140, 40)]


def motion(pcm: np.ndarray) -> list[MotionFrame]:
    stream = MotionStream(EngineParams())
    frames = stream.push_audio(pcm) + stream.flush()
    stream.close()
    return frames


def opening(frames: list[MotionFrame]) -> np.ndarray:
    """What the rig opens for each frame, in inter-ocular distances (press shuts the jaw)."""
    return np.array([f.jaw_open * (1.0 - 0.8 * f.lip_press) for f in frames]) * JAW_DROP_IOD


@pytest.fixture(scope="module", params=CASES, ids=[c[0] for c in CASES])
def clip(request) -> tuple[np.ndarray, list[Phone]]:
    voice, speed, pitch = request.param
    pcm = espeak(TEXT, voice, speed, pitch)
    return pcm, align(pcm, TEXT)


def test_alignment_finds_every_bilabial_of_the_text(clip):
    _, phones = clip
    assert sum(p.name in BILABIALS for p in phones) == 20  # m m m b p p b b m p p m b m p
    assert all(p.end >= p.start for p in phones)


def test_lips_close_on_bilabials_and_open_on_open_vowels(clip):
    pcm, phones = clip
    frames = motion(pcm)
    s = score(opening(frames), pcm, phones)
    print(s.line())
    assert s.bilabial >= 0.85, s.line()
    assert s.open_vowel >= 0.9, s.line()
    assert s.silence == 1.0 and s.lag == 0, s.line()
    assert s.r >= 0.75, s.line()


def test_loud_speech_cannot_hold_the_lips_apart(clip):
    """The same speech 20 dB hotter (clipping at the peaks) closes on the same bilabials: the
    loudness path sets how far the jaw opens, never whether a closure happens."""
    pcm, phones = clip
    quiet = score(opening(motion(pcm * 0.1)), pcm, phones)
    loud = score(opening(motion(np.clip(pcm * 3.0, -1.0, 1.0))), pcm, phones)
    assert loud.bilabial >= 0.85 and abs(loud.bilabial - quiet.bilabial) <= 0.1, (quiet.line(), loud.line())


def test_closure_is_held_through_the_murmur_and_released_into_the_vowel(clip):
    pcm, phones = clip
    frames = motion(pcm)
    press = np.array([f.lip_press for f in frames])
    held = released = total = 0
    for i, p in enumerate(phones[:-1]):
        nxt = phones[i + 1]
        if p.name == "M" and p.end > p.start and nxt.name in OPEN_VOWELS | {"EY", "IY", "EH"}:
            total += 1
            held += int(press[p.start : p.end + 1].max() >= 0.9)
            released += int(press[nxt.start + 1 : nxt.end + 1].min(initial=0.0) < 0.5)
    assert total >= 3
    assert held >= total - 1 and released == total, (held, released, total)
