"""Lip-sync ground truth and metrics shared by tests/quality and benchmarks/lipsync_eval.py.

Ground truth comes from the clip's *known text*, not from the engine: espeak-ng speaks a sentence
(several voices, languages, speeds) and pocketsphinx's forced-alignment mode places each phone of
that sentence in time (a different search from the engine's free allphone decoding). Metrics then
compare the mouth opening re-measured on rendered frames (or the commanded jaw, for motion-level
checks) with those phone intervals.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.types import ENGINE_SAMPLE_RATE, FPS, SAMPLES_PER_FRAME
from tests.support.media import raw_rgb_input

SR = ENGINE_SAMPLE_RATE
MFCC_PER_FRAME = 100 // FPS
BILABIALS = frozenset({"M", "B", "P"})
OPEN_VOWELS = frozenset({"AA", "AE", "AH", "AO", "AW", "AY"})
CLOSED_GAP = 0.05
"""Inner-lip gap (inter-ocular distances) below which lips count as closed (rest measures 0.00-0.02)."""
OPEN_GAP = 0.08
"""An open vowel counts as open when the gap reaches this within its interval."""


@dataclass(frozen=True, slots=True)
class Phone:
    name: str
    start: int  # first video frame (25 fps) the phone covers
    end: int  # last video frame, inclusive


@dataclass(frozen=True, slots=True)
class Clip:
    name: str
    pcm: np.ndarray  # float32 16 kHz mono
    text: str | None  # English text known to be spoken (None: no alignment, loudness only)
    kind: str  # "tts" or "real"


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def espeak(
    text: str, voice: str = "en-us", speed: int = 160, pitch: int = 50, lead_s: float = 0.6
) -> np.ndarray:
    """espeak-ng speech as 16 kHz float32 with ``lead_s`` of digital silence on both ends."""
    import soundfile as sf
    import soxr

    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed (scripts/test.sh installs it)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.wav"
        cmd = [exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(out), text]
        subprocess.run(cmd, check=True, capture_output=True)
        audio, rate = sf.read(out, dtype="float32")
    audio = soxr.resample(audio, rate, SR).astype(np.float32)
    pause = np.zeros(int(lead_s * SR), np.float32)
    return np.concatenate([pause, audio, pause])


def _aligner_config() -> dict[str, object]:
    import pocketsphinx

    model = os.path.join(pocketsphinx.get_model_path(), "en-us")
    return {
        "hmm": os.path.join(model, "en-us"),
        "dict": os.path.join(model, "cmudict-en-us.dict"),
        "lm": None,
        "loglevel": "FATAL",
        "dither": False,
    }


def align(pcm: np.ndarray, text: str) -> list[Phone]:
    """Phones of ``text`` placed in ``pcm`` by pocketsphinx forced alignment, in video frames.

    A phone is given the frames whose centre MFCC frame it covers (the engine reads its own
    labels the same way); silences and fillers are dropped.
    """
    import pocketsphinx

    decoder = pocketsphinx.Decoder(pocketsphinx.Config(**_aligner_config()))
    # digital silence (log of zero energy) derails the alignment search: add a fixed -70 dBFS bed
    bed = np.random.default_rng(0).standard_normal(len(pcm)) * 3e-4
    raw = np.round(np.clip(pcm + bed, -1, 1) * 32767).astype("<i2").tobytes()
    words = " ".join(w.strip(".,;:!?\"'").lower() for w in text.split())
    decoder.set_align_text(words)
    decoder.start_utt()
    decoder.process_raw(raw, full_utt=True)
    decoder.end_utt()
    if decoder.hyp() is None or decoder.hyp().hypstr.split() != words.split():
        raise RuntimeError(f"forced alignment failed for {text!r}")
    decoder.set_alignment()
    decoder.start_utt()
    decoder.process_raw(raw, full_utt=True)
    decoder.end_utt()
    phones: list[Phone] = []
    for word in decoder.get_alignment():
        for phone in word:
            name = phone.name
            if name in ("SIL", "+SPN+", "+NSN+") or name.startswith("+"):
                continue
            first = phone.start
            last = phone.start + phone.duration - 1
            f0 = -(-(first - 1) // MFCC_PER_FRAME)  # first video frame whose centre MFCC (4f+1) >= first
            f1 = (last - 1) // MFCC_PER_FRAME
            if f1 < f0:  # shorter than a frame: the frame it overlaps most
                f0 = f1 = (first + last) // 2 // MFCC_PER_FRAME
            phones.append(Phone(name, f0, f1))
    return phones


def frame_rms(pcm: np.ndarray, n: int) -> np.ndarray:
    padded = np.zeros(n * SAMPLES_PER_FRAME, np.float64)
    m = min(len(pcm), len(padded))
    padded[:m] = pcm[:m]
    return np.sqrt(np.mean(padded.reshape(n, SAMPLES_PER_FRAME) ** 2, axis=1))


def pause_frames(rms: np.ndarray, min_frames: int = 8) -> np.ndarray:
    """Frames inside pauses ≥ 300 ms (45 dB below the loudest frame, or at the noise floor),
    less one frame at each edge (the release/onset frame belongs to the speech)."""
    db = 20 * np.log10(rms + 1e-12)
    quiet = db < max(db.max() - 45, np.percentile(db, 5) + 6)
    mask = np.zeros(len(rms), bool)
    start = None
    for i, q in enumerate([*quiet.tolist(), False]):
        if q and start is None:
            start = i
        elif not q and start is not None:
            if i - start >= min_frames:
                mask[start + 1 : i - 1] = True
            start = None
    return mask


@dataclass(frozen=True, slots=True)
class LipsyncScore:
    bilabial: float  # share of M/B/P with a closed frame within ±1 frame
    n_bilabial: int
    open_vowel: float  # share of open vowels (≥ 2 frames) that open
    n_open: int
    silence: float  # share of pause frames closed
    n_silence: int
    r: float  # Pearson r of the gap with the frame RMS
    lag: int  # lag (frames) of the best correlation, + = mouth later than sound

    def line(self) -> str:
        return (
            f"bilabial {self.bilabial:6.1%} ({self.n_bilabial:3d})  "
            f"open {self.open_vowel:6.1%} ({self.n_open:3d})  "
            f"silence {self.silence:6.1%} ({self.n_silence:4d})  r {self.r:.3f}  lag {self.lag:+d}"
        )


def score(
    gap: np.ndarray,
    pcm: np.ndarray,
    phones: list[Phone] | None,
    closed: float = CLOSED_GAP,
    opened: float = OPEN_GAP,
) -> LipsyncScore:
    """Score a per-frame mouth gap against the clip's loudness and aligned phones."""
    n = len(gap)
    rms = frame_rms(pcm, n)
    hits = opens = nb = no = 0
    for p in phones or ():
        if p.name in BILABIALS:
            nb += 1
            window = gap[max(p.start - 1, 0) : min(p.end + 2, n)]
            hits += int(len(window) > 0 and window.min() < closed)
        elif p.name in OPEN_VOWELS and p.end > p.start:
            no += 1
            window = gap[p.start : min(p.end + 1, n)]
            opens += int(len(window) > 0 and window.max() >= opened)
    pauses = pause_frames(rms)
    silence = float(np.mean(gap[pauses] < closed)) if pauses.any() else 1.0
    r = float(np.corrcoef(gap, rms)[0, 1])
    lags = range(-3, 4)
    corr = [
        float(np.corrcoef(gap[max(k, 0) : n + min(k, 0)], rms[max(-k, 0) : n - max(k, 0)])[0, 1])
        for k in lags
    ]
    return LipsyncScore(
        bilabial=hits / nb if nb else 1.0,
        n_bilabial=nb,
        open_vowel=opens / no if no else 1.0,
        n_open=no,
        silence=silence,
        n_silence=int(pauses.sum()),
        r=r,
        lag=list(lags)[int(np.argmax(corr))],
    )


def x264_round_trip(ffmpeg: str, frames: np.ndarray, crf: int = 23) -> np.ndarray:
    """(N, H, W, 3) RGB → H.264 (yuv420p, as the HLS sinks encode) → decoded RGB frames."""
    n, h, w, _ = frames.shape
    enc = subprocess.run(
        [
            *raw_rgb_input(ffmpeg, w, h),
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            str(crf),
            "-pix_fmt",
            "yuv420p",
            "-f",
            "h264",
            "-",
        ],
        input=np.ascontiguousarray(frames).tobytes(),
        capture_output=True,
        check=True,
    )
    dec = subprocess.run(
        [ffmpeg, "-v", "error", "-f", "h264", "-i", "-", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        input=enc.stdout,
        capture_output=True,
        check=True,
    )
    return np.frombuffer(dec.stdout, np.uint8).reshape(-1, h, w, 3)[:n]
