"""Finished LL-HLS segments on disk: the session recording's input in LL mode.

Why: the timeline holds only a bounded window in memory, but a session recording
(``hls.mp4.remux_hls_to_mp4``) wants every segment of the session. The init segment plus the
segments in order form one valid fragmented MP4, so ``paths()`` (init first) can be concatenated
and remuxed with ``-c copy``. With ``keep`` set, only the newest ``keep`` segments stay on disk
(bounded disk use, like the TS sink's ``delete_segments``). When the stream ends,
``write_playlist`` closes the directory as a replayable fMP4 HLS playlist (as the TS sink does).
"""

from __future__ import annotations

import collections
import contextlib
import math
import threading
from pathlib import Path

from hls.llhls.timeline import INIT_URI, segment_uri


class SegmentArchive:
    """Writes ``init.mp4`` and ``seg_<msn>.m4s`` into a directory the caller owns. Thread-safe."""

    def __init__(self, directory: Path, keep: int | None = None) -> None:
        if keep is not None and keep < 1:
            raise ValueError("keep must be >= 1 (or None for every segment)")
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise FileNotFoundError(f"archive directory {self.directory} does not exist")
        self._keep = keep
        self._init: Path | None = None
        self._segments: collections.deque[tuple[int, Path, float]] = collections.deque()
        self._discontinuities: set[int] = set()  # msns that follow an encoder restart
        self._lock = threading.Lock()

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)  # readers never see half a file

    def set_init(self, data: bytes) -> None:
        path = self.directory / INIT_URI
        self._write(path, data)
        with self._lock:
            self._init = path

    def add_segment(self, msn: int, data: bytes, duration: float, discontinuity: bool = False) -> Path:
        path = self.directory / segment_uri(msn)
        self._write(path, data)
        with self._lock:
            self._segments.append((msn, path, duration))
            if discontinuity:
                self._discontinuities.add(msn)
            dropped = []
            while self._keep is not None and len(self._segments) > self._keep:
                gone = self._segments.popleft()
                self._discontinuities.discard(gone[0])
                dropped.append(gone[1])
        for old in dropped:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()
        return path

    @property
    def segment_numbers(self) -> list[int]:
        with self._lock:
            return [msn for msn, _, _ in self._segments]

    def paths(self) -> list[Path]:
        """``[init.mp4, seg_a.m4s, …]`` in order (empty until the first segment is finished)."""
        with self._lock:
            if self._init is None or not self._segments:
                return []
            return [self._init, *(p for _, p, _ in self._segments)]

    def write_playlist(self, name: str = "playlist.m3u8") -> Path | None:
        """At the end of the stream: a closed (``#EXT-X-ENDLIST``) fMP4 playlist of the segments kept,
        so the directory replays as HLS on its own. None when there is nothing to list."""
        with self._lock:
            segments = list(self._segments)
            breaks = set(self._discontinuities)
        if self._init is None or not segments:
            return None
        target = max(1, math.ceil(max(d for _, _, d in segments) - 1e-3))
        lines = ["#EXTM3U", "#EXT-X-VERSION:7", f"#EXT-X-TARGETDURATION:{target}"]
        lines += [f"#EXT-X-MEDIA-SEQUENCE:{segments[0][0]}", "#EXT-X-PLAYLIST-TYPE:VOD"]
        lines += ["#EXT-X-INDEPENDENT-SEGMENTS", f'#EXT-X-MAP:URI="{INIT_URI}"']
        for msn, path, duration in segments:
            if msn in breaks and msn != segments[0][0]:
                lines.append("#EXT-X-DISCONTINUITY")
            lines += [f"#EXTINF:{duration:.3f},", path.name]
        path = self.directory / name
        self._write(path, ("\n".join([*lines, "#EXT-X-ENDLIST"]) + "\n").encode())
        return path
