"""Lip-sync measured as a user sees it: faces × voices, rendered, x264-encoded, decoded, re-detected.

For every face of benchmarks/eval_media.py and every voice (espeak-ng voices with known text,
forced-aligned by pocketsphinx; the bundled sample; a real recorded voice shipped by Debian's
alsa-utils), the CPU engine renders the clip pushed in uneven chunks, the frames go through an
x264 round trip (yuv420p, CRF 23, as the HLS sinks encode), MediaPipe's face mesh re-detects the
lips on every decoded frame, and tests/support/lipsync.py scores the inner-lip gap:

- bilabial: share of aligned M/B/P with closed lips (gap < 0.05 IOD) within ±1 frame  (≥ 90 %)
- open: share of aligned open vowels (≥ 2 frames) whose gap reaches 0.08 IOD           (≥ 95 %)
- silence: share of frames inside pauses ≥ 300 ms that are closed, per render        (≥ 95 %)
- r: Pearson r of gap vs frame RMS (≥ 0.85 TTS, ≥ 0.75 real), lag of the best r       (0)

Usage: python benchmarks/lipsync_eval.py [--faces a,b] [--voices x,y] [--motion-only]
``--motion-only`` scores the commanded jaw instead (seconds, no rendering).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.eval_media import TEXTS, VOICES, faces  # noqa: E402
from hls.ffmpeg_tools import ffmpeg_exe  # noqa: E402
from models.engines.cpu import CpuEngine  # noqa: E402
from models.errors import FacestreamError  # noqa: E402
from models.face import FaceLandmarker  # noqa: E402
from models.face.landmarks import FaceBox  # noqa: E402
from models.face.measure import mouth_opening  # noqa: E402
from models.render.rig_mouth import JAW_DROP_IOD  # noqa: E402
from models.types import EngineParams  # noqa: E402
from tests.support.lipsync import SR, Clip, align, espeak, score, x264_round_trip  # noqa: E402

DEB_DIR = ROOT / "benchmarks" / "out" / "debs"
ALSA_WORDS = ["Front_Center", "Front_Left", "Front_Right", "Rear_Center", "Rear_Left", "Side_Left"]


def alsa_voice() -> Clip | None:
    """A real recorded voice: alsa-utils' speaker-test announcements, joined with pauses."""
    import soundfile as sf
    import soxr

    wav_dir = DEB_DIR / "usr" / "share" / "sounds" / "alsa"
    if not wav_dir.exists():
        DEB_DIR.mkdir(parents=True, exist_ok=True)
        try:
            subprocess.run(
                ["apt-get", "download", "alsa-utils"], cwd=DEB_DIR, check=True, capture_output=True
            )
            deb = sorted(DEB_DIR.glob("alsa-utils_*.deb"))[0]
            subprocess.run(["dpkg-deb", "-x", str(deb), str(DEB_DIR)], check=True)
        except (OSError, subprocess.CalledProcessError, IndexError):
            return None
    parts = [np.zeros(int(0.6 * SR), np.float32)]
    for word in ALSA_WORDS:
        audio, rate = sf.read(wav_dir / f"{word}.wav", dtype="float32")
        audio = audio.mean(axis=1) if audio.ndim == 2 else audio
        parts += [soxr.resample(audio, rate, SR).astype(np.float32), np.zeros(int(0.5 * SR), np.float32)]
    text = " ".join(w.replace("_", " ") for w in ALSA_WORDS)
    return Clip("alsa-real", np.concatenate(parts), text, "real")


def voices() -> list[Clip]:
    import soundfile as sf

    from models.samples import SAMPLE_SPEECH

    clips = [
        Clip(name, espeak(TEXTS[key], v, speed, pitch), TEXTS[key], "tts")
        for name, v, speed, pitch, key in VOICES
    ]
    sample, _ = sf.read(SAMPLE_SPEECH, dtype="float32")
    clips.append(Clip("sample", sample, None, "tts"))
    clips.append(
        Clip(
            "de-slow",
            espeak("Guten Morgen, wie geht es Ihnen? Das Wetter ist heute schön.", "de", 130, 30),
            None,
            "tts",
        )
    )
    real = alsa_voice()
    if real is not None:
        clips.append(real)
    return clips


def render(engine: CpuEngine, avatar, pcm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rendered frames and commanded jaw (after closure) for one clip, pushed in uneven chunks."""
    params = EngineParams()
    stream = engine.open_stream(avatar, params)
    rng = np.random.default_rng(3)
    out, pos = [], 0
    while pos < len(pcm):
        n = int(rng.integers(1_000, 9_000))
        out += stream.push_audio(pcm[pos : pos + n])
        pos += n
    out += stream.flush()
    stream.close()
    jaw = np.array([f.motion.jaw_open * (1 - 0.8 * f.motion.lip_press) for f in out]) * JAW_DROP_IOD
    return np.stack([f.image for f in out]), jaw


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--faces", default="", help="comma-separated face names (default: all)")
    parser.add_argument("--voices", default="", help="comma-separated voice names (default: all)")
    parser.add_argument("--motion-only", action="store_true")
    args = parser.parse_args()
    t0 = time.perf_counter()
    clips = [c for c in voices() if not args.voices or c.name in args.voices.split(",")]
    truth = {c.name: align(c.pcm, c.text) if c.text else None for c in clips}
    portraits = {k: v for k, v in faces().items() if not args.faces or k in args.faces.split(",")}
    engine = CpuEngine()
    landmarker = FaceLandmarker()
    rows = []
    for face_name, rgb in portraits.items():
        try:
            avatar = engine.prepare(rgb, EngineParams())
        except FacestreamError as exc:  # a photo the engine refuses, with its typed error
            print(f"{face_name:20s} refused: {type(exc).__name__}: {exc}", flush=True)
            continue
        lo, hi = avatar.landmarks[:, :2].min(axis=0), avatar.landmarks[:, :2].max(axis=0)
        box = FaceBox(float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]), 1.0)
        for clip in clips:
            frames, jaw = render(engine, avatar, clip.pcm)
            if args.motion_only:
                gap = jaw
            else:
                decoded = x264_round_trip(ffmpeg_exe(), frames)
                gaps = []
                for img in decoded:
                    lms = landmarker.mesh(np.ascontiguousarray(img), box)
                    gaps.append(mouth_opening(lms) if lms is not None else np.nan)
                gap = np.array(gaps)
                lost = int(np.isnan(gap).sum())
                gap = np.nan_to_num(gap, nan=float(np.nanmedian(gap)))
            s = score(gap, clip.pcm, truth[clip.name])
            rows.append((face_name, clip, s))
            print(
                f"{face_name:20s} {clip.name:16s} {clip.kind:4s} {s.line()}"
                + ("" if args.motion_only else f"  lost {lost}"),
                flush=True,
            )
    print()
    bil = [(s.bilabial * s.n_bilabial, s.n_bilabial) for _, c, s in rows if c.text]
    opn = [(s.open_vowel * s.n_open, s.n_open) for _, c, s in rows if c.text]
    total = lambda pairs: sum(a for a, _ in pairs) / max(sum(b for _, b in pairs), 1)  # noqa: E731
    print(f"bilabial closure ±1 frame: {total(bil):.1%} of {sum(b for _, b in bil)}  (target ≥ 90 %)")
    print(f"open vowels open:          {total(opn):.1%} of {sum(b for _, b in opn)}  (target ≥ 95 %)")
    print(
        f"silence closed, worst render: {min(s.silence for *_, s in rows):.1%}  (target ≥ 95 % every render)"
    )
    for kind, target in (("tts", 0.85), ("real", 0.75)):
        rs = [s.r for _, c, s in rows if c.kind == kind]
        if rs:
            print(
                f"r vs loudness ({kind}): median {np.median(rs):.3f}, min {min(rs):.3f}  (target ≥ {target})"
            )
    lags = [s.lag for *_, s in rows]
    print(f"lag: {sorted(set(lags))} (share 0: {np.mean(np.array(lags) == 0):.0%})")
    rendered = len({face for face, *_ in rows})
    elapsed = time.perf_counter() - t0
    print(f"{rendered} faces rendered (of {len(portraits)}) × {len(clips)} voices in {elapsed:.0f} s")


if __name__ == "__main__":
    main()
