"""The built-in CPU engine: MediaPipe landmarks + audio→motion + the mesh-warp renderer.

No weights, no GPU. ``prepare`` analyses the portrait once (face crop, 478 landmarks) and builds
the renderer's per-avatar precomputation (cached in ``Avatar.engine_data``); each session then
gets a ``CpuEngineStream`` that turns its timeline audio into MotionFrames (``MotionStream``)
and renders them. ``EngineParams.nfe`` and ``cfg_scale`` steer the neural engine's sampler: this
engine accepts them and does not use them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from models.engines.stream_workers import RemoteCpuStream, StreamWorkerPool
from models.face import FaceAnalysis, FaceAnalyzer
from models.face.decode import DEFAULT_MAX_PIXELS
from models.motion.stream import LOOKAHEAD_FRAMES, MotionStream
from models.render import FaceRenderer
from models.types import Avatar, EngineParams, MotionFrame, VideoFrame

SPEECH_ACTIVITY = 0.5
"""A frame counts as speech-driven when at least this share of its ±2-frame window is voiced."""


class CpuEngine:
    """Shared by all sessions; thread-safe (the analyzer pools its MediaPipe graphs and a
    prepared renderer is immutable)."""

    name = "cpu"

    def __init__(
        self,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        lookahead_frames: int = LOOKAHEAD_FRAMES,
        processes: int = 0,
    ) -> None:
        """``lookahead_frames``: the motion stream's right context (5 = 200 ms, the best visemes);
        a live server lowers it to cut glass-to-glass latency (settings.cpu_lookahead_ms).
        ``processes`` > 0: every stream (audio→motion and render) runs in one of that many worker
        processes (``models.engines.stream_workers``: pocketsphinx and the render glue hold the GIL;
        a live server with many sessions wants them off its own lock); 0: in the calling thread."""
        self._analyzer = FaceAnalyzer(max_pixels=max_pixels)
        self.lookahead_frames = lookahead_frames
        self._pool = StreamWorkerPool(processes) if processes > 0 else None

    @property
    def worker_pids(self) -> list[int]:
        """Processes that do part of this engine's work (their CPU is the engine's too)."""
        return self._pool.pids if self._pool is not None else []

    def close(self) -> None:
        """Stop the stream workers, if any (idempotent)."""
        if self._pool is not None:
            self._pool.close()

    def prepare(self, image: np.ndarray, params: EngineParams) -> Avatar:
        """Analyse an RGB portrait (any size/mode) and precompute its renderer."""
        return self._avatar(self._analyzer.analyze(image, crop=params.crop))

    def prepare_bytes(self, data: bytes, params: EngineParams) -> Avatar:
        """Like ``prepare`` for raw upload bytes (EXIF rotation, pixel-limit guard, any format)."""
        return self._avatar(self._analyzer.analyze_bytes(data, crop=params.crop))

    def warm_workers(self, avatar: Avatar, pcm: np.ndarray) -> None:
        """Speech through every worker process once (``WarmsWorkers``); nothing without workers."""
        if self._pool is not None:
            self._pool.warm(self._renderer(avatar), EngineParams(), self.lookahead_frames, pcm)

    @staticmethod
    def _renderer(avatar: Avatar) -> FaceRenderer:
        renderer = avatar.engine_data
        if not isinstance(renderer, FaceRenderer):  # an Avatar prepared elsewhere: build it now
            renderer = FaceRenderer(avatar.image, avatar.landmarks)
            avatar.engine_data = renderer
        return renderer

    def open_stream(self, avatar: Avatar, params: EngineParams) -> CpuEngineStream | RemoteCpuStream:
        renderer = self._renderer(avatar)
        if self._pool is not None:
            return self._pool.open(renderer, params, self.lookahead_frames)
        return CpuEngineStream(renderer, params, self.lookahead_frames)

    @staticmethod
    def _avatar(analysis: FaceAnalysis) -> Avatar:
        return Avatar(
            image=analysis.image,
            landmarks=analysis.landmarks,
            crop_box=analysis.crop_box,
            source_size=analysis.source_size,
            engine_data=FaceRenderer(analysis.image, analysis.landmarks),
            face_box=analysis.face_box,
            faces_found=analysis.faces_found,
        )


class CpuEngineStream:
    """One session's timeline: audio → MotionStream → rendered frames. Not thread-safe."""

    def __init__(
        self,
        renderer: FaceRenderer,
        params: EngineParams,
        lookahead_frames: int = LOOKAHEAD_FRAMES,
    ) -> None:
        self._renderer = renderer
        self._params = params
        self._lookahead = lookahead_frames
        self._motion = MotionStream(params, lookahead_frames=lookahead_frames)
        self._stills = StillPictures(renderer)
        self._closed = False

    @property
    def lookahead_frames(self) -> int:
        return self._motion.lookahead_frames

    def push_audio(self, pcm: np.ndarray, context: np.ndarray | None = None) -> list[VideoFrame]:
        """``context`` is ignored: the motion stream's state already holds that audio."""
        self._check_open()
        return self._render(self._motion.push_audio(pcm))

    def push_audio_skipping(
        self, pcm: np.ndarray, skip: Callable[[int], bool], context: np.ndarray | None = None
    ) -> list[VideoFrame]:
        """``push_audio`` that leaves out (never renders) the frames ``skip`` rejects
        (``models.engines.base.SkipsFrames``): motion is a function of the audio alone, so the
        frames that are rendered are the same as without skipping."""
        self._check_open()
        return self._render(self._motion.push_audio(pcm), skip)

    def flush(self) -> list[VideoFrame]:
        self._check_open()
        return self._render(self._motion.flush())

    def rewind(self, frame_index: int) -> None:
        """Forget all audio from timeline frame ``frame_index`` on; the next push starts there.

        Why: barge-in. The stream has already listened up to lookahead + margin past the playhead;
        a session that drops that speech rewinds the stream to just after the playhead and pushes
        silence instead, so the frames it re-renders are idle. Cheap: a new MotionStream starting at
        ``frame_index`` (the renderer is shared); the nod spring and loudness gate start at rest.
        """
        self._check_open()
        self._motion.close()
        self._motion = MotionStream(self._params, start_index=frame_index, lookahead_frames=self._lookahead)
        self._stills.reset()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._motion.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("CpuEngineStream is closed")

    def frames_skipping(self, pcm: np.ndarray, skip: Callable[[int], bool]) -> Iterator[VideoFrame]:
        """``push_audio_skipping``, lazily: the audio is consumed at once, and each frame is
        decided and rendered when the iterator reaches it (a worker process sends each frame on
        as soon as it exists). Consume it fully before the next call."""
        self._check_open()
        return self._frames(self._motion.push_audio(pcm), skip)

    def _render(
        self, motions: list[MotionFrame], skip: Callable[[int], bool] | None = None
    ) -> list[VideoFrame]:
        return list(self._frames(motions, skip))

    def _frames(self, motions: list[MotionFrame], skip: Callable[[int], bool] | None) -> Iterator[VideoFrame]:
        for m in motions:
            speech = m.speech >= SPEECH_ACTIVITY
            anchor = self._stills.anchor_for(m, speech)  # every frame, skipped or not
            if skip is not None and skip(m.index):
                continue
            yield VideoFrame(m.index, self._stills.picture(anchor), speech=speech, motion=m)


class StillPictures:
    """Idle frames that cost (almost) nothing: while the face is at rest, a picture is reused.

    Why: most of a live avatar's life is idle (waiting for the next utterance), and idle motion is
    slow drift — between consecutive idle frames the mesh moves ~0.05 px (median; 91 % under
    0.1 px on the sample face). An idle frame whose every vertex lies within ``REUSE_PX`` of the
    *anchor* frame (the last one that was drawn) shows the anchor's picture instead of rendering
    again (the rig's displacements, ~0.1 ms, decide); once the drift exceeds it, the frame is
    drawn and becomes the anchor — a 0.2 px step, below what bilinear resampling lets an eye see.
    Speech frames always get their own picture.

    Deterministic and chunk-invariant: the anchor sequence is a function of the motion sequence
    alone, updated for *every* frame (also those the session skips), and an anchor's picture is
    drawn from the anchor's own motion when first needed — so skipping or chunking never changes
    a returned picture.
    """

    REUSE_PX = 0.2

    def __init__(self, renderer: FaceRenderer) -> None:
        self._renderer = renderer
        self.reset()

    def reset(self) -> None:
        self._motion: MotionFrame | None = None
        self._disp: np.ndarray | None = None
        self._image: np.ndarray | None = None
        self.drawn = 0
        self.reused = 0

    def anchor_for(self, m: MotionFrame, speech: bool) -> tuple[MotionFrame, np.ndarray]:
        """The (motion, displacements) whose picture frame ``m`` shows; advances the anchor."""
        disp = self._renderer.rig.displacements(m)
        if (
            not speech
            and self._disp is not None
            and self._motion is not None
            and float(np.abs(disp - self._disp).max()) < self.REUSE_PX
        ):
            return self._motion, self._disp
        self._motion, self._disp, self._image = m, disp, None
        return m, disp

    def picture(self, anchor: tuple[MotionFrame, np.ndarray]) -> np.ndarray:
        motion, disp = anchor
        if motion is self._motion and self._image is not None:
            self.reused += 1
            return self._image
        image = self._renderer.render(motion, disp)
        image.setflags(write=False)  # shared by the frames that reuse it
        self.drawn += 1
        if motion is self._motion:
            self._image = image
        return image
