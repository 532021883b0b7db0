"""Typed values that flow between the engine stages and out to the session clock.

Every frame carries its timeline index (pts in frames at ``FPS``) so that stages can be
chunked, reordered across threads and re-assembled without guessing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

FPS = 25
"""Video frame rate of every session timeline."""

ENGINE_SAMPLE_RATE = 16_000
"""Sample rate of the PCM that engines consume (mono float32 in [-1, 1])."""

SAMPLES_PER_FRAME = ENGINE_SAMPLE_RATE // FPS  # 640


@dataclass(frozen=True, slots=True)
class EngineParams:
    """Per-session generation parameters (the published API's init fields).

    ``nfe`` and ``cfg_scale`` steer the neural engine's ODE sampler; the CPU engine accepts and
    ignores them (documented, not pretended).
    """

    crop: bool = True
    seed: int = 42
    nfe: int = 10
    cfg_scale: float = 2.0
    pose_style: tuple[float, float, float] = (0.0, 0.0, 0.0)  # pitch, yaw, roll in degrees
    gaze_style: tuple[float, float] = (0.0, 0.0)  # x (+ = subject looks to image right), y (+ = down)


@dataclass(slots=True)
class Avatar:
    """What an engine prepared from one portrait, once per session.

    ``image`` is the RGB frame every output frame is derived from (after crop/resize), and
    ``landmarks`` its 478 face-mesh points in pixel coordinates (x, y, z with z in pixel units,
    negative towards the camera). ``engine_data`` holds engine-specific precomputation.
    """

    image: np.ndarray  # (H, W, 3) uint8 RGB, H and W even
    landmarks: np.ndarray  # (478, 3) float32
    crop_box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the source image (after EXIF rotation)
    source_size: tuple[int, int]  # (width, height) of the source image after EXIF rotation
    engine_data: Any = None
    face_box: tuple[int, int, int, int] | None = None  # the animated face in the source image, if known
    faces_found: int = 1  # faces in the photo; with several, the largest, most central one is animated

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the output frames."""
        return int(self.image.shape[1]), int(self.image.shape[0])


@dataclass(frozen=True, slots=True)
class MotionFrame:
    """Per-frame face motion parameters for one timeline frame.

    Mouth parameters come from speech (audio-to-motion); lids, head and gaze from the seeded idle
    model plus the session's pose/gaze style. All values are small, bounded and renderer-agnostic.
    """

    index: int
    jaw_open: float = 0.0  # 0 closed .. 1 widest speech opening
    mouth_width: float = 0.0  # -1 rounded/puckered ("oo") .. +1 spread ("ee")
    lip_press: float = 0.0  # 0..1 lips pressed together (m, b, p)
    speech: float = 0.0  # 0..1 voice activity; drives speech-linked nods
    blink_left: float = 0.0  # 0 open .. 1 closed (subject's left eye)
    blink_right: float = 0.0
    pitch: float = 0.0  # degrees, + = chin down
    yaw: float = 0.0  # degrees, + = face turns towards image right
    roll: float = 0.0  # degrees, + = clockwise in the image
    gaze_x: float = 0.0  # -1..1 of the iris travel, + = towards image right
    gaze_y: float = 0.0  # -1..1, + = down


@dataclass(frozen=True, slots=True)
class VideoFrame:
    """One rendered RGB frame at timeline index ``index`` (pts = index / FPS seconds)."""

    index: int
    image: np.ndarray  # (H, W, 3) uint8 RGB, C-contiguous
    speech: bool = False  # True where the frame is driven by speech (not silence)
    motion: MotionFrame | None = field(default=None, compare=False)

    @property
    def pts(self) -> float:
        return self.index / FPS


@dataclass(frozen=True, slots=True)
class AudioSlice:
    """1/FPS s of output audio belonging to timeline frame ``index`` (mono int16)."""

    index: int
    pcm: np.ndarray  # (n,) int16
    sample_rate: int
