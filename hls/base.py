"""The sink contract: what a session's clock (or an offline render) hands its ticks to.

Why protocols here and not in ``server/``: every implementation lives at or below this package
(``HlsSink``, ``LlHlsSink``, ``Mp4Writer``) or wraps one (the server's restarting and barcode
wrappers), and the server's session, recording and status code depend only on these shapes.
Optional abilities are protocols of their own, checked with ``isinstance`` — never probed with
``getattr`` — and wrappers forward what they wrap explicitly, naming it ``inner``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

from models.types import AudioSlice, VideoFrame


@runtime_checkable
class TickWriter(Protocol):
    """The least a tick consumer offers: one frame plus its 1/25 s of audio per call, in order."""

    def write(self, frame: VideoFrame, audio: AudioSlice) -> None: ...


@runtime_checkable
class TickSink(Protocol):
    """A live session's primary output (one encoder per session): started once, fed one tick at a
    time from the session's clock thread, ended once (the playlist gets ``#EXT-X-ENDLIST``), closed
    by its owner (idempotent; kills the encoder if ``end`` never came)."""

    def start(self) -> object: ...

    def write(self, frame: VideoFrame, audio: AudioSlice, timeout: float | None = None) -> None: ...

    def end(self, timeout: float = 10.0) -> object: ...

    def close(self) -> None: ...

    @property
    def segment_paths(self) -> list[Path]:
        """Files of every published segment still on disk, in order: the recording's input."""
        ...

    @property
    def published_count(self) -> int:
        """Segments published so far, also those that left the live window (status JSON)."""
        ...

    @property
    def queued_ticks(self) -> int:
        """Ticks written but not yet taken by the encoder (a queue-depth metric)."""
        ...


@runtime_checkable
class SinkWrapper(Protocol):
    """A sink that adds behaviour around another one and says which (``inner``)."""

    @property
    def inner(self) -> TickSink: ...


S = TypeVar("S")


def find_sink(sink: object, kind: type[S]) -> S | None:
    """The first sink of ``kind`` in a wrapper chain (``sink`` itself, its ``inner``, …), or None."""
    seen = 0
    while sink is not None and seen < 16:  # chains are 1–3 long; the bound only guards a cycle
        if isinstance(sink, kind):
            return sink
        sink = sink.inner if isinstance(sink, SinkWrapper) else None
        seen += 1
    return None
