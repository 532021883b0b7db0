"""Acceptance checks on one avatar run recorded by an agent probe (Pipecat or LiveKit).

The probe's script: idle; utterance A pushed as a burst then closed; idle; utterance B streamed at
real-time pace in 20 ms chunks and interrupted ~2 s into its playback; idle. Every delivered image
is recorded with its arrival time, pts, whether it carries speech audio, and the inner-lip gap
re-measured on the image by MediaPipe; every delivered audio frame with arrival, pts and RMS.
"""

from __future__ import annotations

import numpy as np

FPS = 25
FRAME_S = 1 / FPS
CLOSED_GAP = 0.05  # inter-ocular distances; a resting mouth measures ~0.00-0.02


def speech_segments(images: list[dict]) -> list[list[dict]]:
    """Runs of consecutive images that carry speech audio."""
    runs: list[list[dict]] = []
    for prev, im in zip([None, *images], images, strict=False):
        if im["audio"]:
            if prev is None or not prev["audio"]:
                runs.append([])
            runs[-1].append(im)
    return runs


def check_frame_count(run: dict) -> list[dict]:
    """Utterance A: frames = duration × fps (± 1), consecutive pts."""
    segments = speech_segments(run["images"])
    assert len(segments) >= 2, f"expected utterances A and B, got {len(segments)} speech runs"
    a = segments[0]
    expected = run["a_seconds"] * FPS
    assert abs(len(a) - expected) <= 1, f"A: {len(a)} speech frames for {expected:.1f} expected"
    steps = np.diff([im["pts_s"] for im in run["images"]])
    assert np.allclose(steps, FRAME_S, atol=1e-6), "image pts must advance one frame per image"
    return a


def check_mouth_follows_audio(run: dict, a: list[dict]) -> float:
    """The re-measured lip gap correlates with the loudness of the audio each frame carries."""
    audio = {round(x["pts_s"], 3): x for x in run["audio"]}
    gap = np.array([im["gap"] for im in a])
    loud = np.array([audio[round(im["pts_s"], 3)]["rms"] for im in a])
    assert not np.isnan(gap).any(), "face lost on a delivered frame"
    r = float(np.corrcoef(gap, loud)[0, 1])
    assert r >= 0.6, f"r(lip gap, audio rms) = {r:.3f}"
    return r


def check_av_alignment(run: dict, tolerance_s: float = FRAME_S) -> float:
    """Every speech image has its audio frame with the same pts, delivered within ``tolerance_s``."""
    audio = {round(x["pts_s"], 3): x for x in run["audio"]}
    worst = 0.0
    for im in run["images"]:
        if not im["audio"]:
            continue
        key = round(im["pts_s"], 3)
        assert key in audio, f"no audio frame for the speech image at pts {key}"
        worst = max(worst, abs(audio[key]["t"] - im["t"]))
    assert worst <= tolerance_s, f"audio and image of one frame delivered {worst * 1000:.0f} ms apart"
    assert len(audio) == sum(im["audio"] for im in run["images"]), "audio frames without an image"
    return worst


def check_interruption(run: dict) -> tuple[float, float]:
    """After the interruption the face is idle (silent, mouth closed) within 100 ms, and stays so.

    Measured on the stream (pts of the first idle frame − pts of the frame delivered last before
    the interruption: what a viewer sees) ≤ 100 ms; in wall time (delivery − interruption), which
    also counts CPU starvation on a loaded machine, ≤ 200 ms. Returns (stream s, wall s)."""
    sent = run["interrupt_sent"]
    before = [im for im in run["images"] if im["t"] <= sent]
    after = [im for im in run["images"] if im["t"] > sent]
    assert before and after, "no frames around the interruption"
    idle = next((im for im in after if not im["audio"] and im["gap"] < CLOSED_GAP), None)
    assert idle is not None, "never idle after the interruption"
    media = idle["pts_s"] - before[-1]["pts_s"]
    wall = idle["t"] - sent
    assert media <= 0.1 + 1e-6, f"idle {media * 1000:.0f} ms of stream after the interruption"
    assert wall <= 0.2, f"idle delivered {wall * 1000:.0f} ms after the interruption"
    later = [im for im in after if im["t"] >= idle["t"]]
    assert not any(im["audio"] for im in later), "speech audio played after the interruption"
    return media, wall


def check_idle_flow(run: dict) -> None:
    """Frames keep coming in silence: the image rate over the whole run is ~25 fps."""
    t = np.array([im["t"] for im in run["images"]])
    rate = (len(t) - 1) / (t[-1] - t[0])
    assert 23.0 <= rate <= 26.0, f"{rate:.1f} images/s"
    idle = [im for im in run["images"] if not im["audio"]]
    assert len(idle) >= FPS, "idle frames missing"


def streamed_latencies(run: dict) -> np.ndarray:
    """Utterance B (real-time 20 ms chunks): delivery of speech image j − push of its first chunk."""
    b = speech_segments(run["images"])[1]
    per_frame = round(FRAME_S / run["b_chunk_s"])
    pushes = run["b_chunk_pushes"]
    out = [im["t"] - pushes[j * per_frame] for j, im in enumerate(b) if j * per_frame < len(pushes)]
    return np.array(out)
