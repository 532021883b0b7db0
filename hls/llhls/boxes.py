"""ISO BMFF (MP4) box framing: split a byte stream into top-level boxes, walk children, read fields.

Incremental by design: ffmpeg writes fragmented MP4 to a pipe in arbitrary chunks, and a part
must be published the moment its ``mdat`` is complete, without waiting for more bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass


class BoxFormatError(ValueError):
    """The bytes are not well-formed ISO BMFF."""


@dataclass(frozen=True, slots=True)
class Box:
    type: bytes  # four characters, e.g. b"moof"
    data: bytes  # the whole box, header included (what gets served)
    header_size: int

    @property
    def payload(self) -> bytes:
        return self.data[self.header_size :]


def _header(buf: bytes | memoryview, pos: int, end: int) -> tuple[int, bytes, int] | None:
    """(size, type, header size) of the box at ``pos``, or None if the header is incomplete."""
    if end - pos < 8:
        return None
    size, typ = struct.unpack_from(">I4s", buf, pos)
    header = 8
    if size == 1:
        if end - pos < 16:
            return None
        (size,) = struct.unpack_from(">Q", buf, pos + 8)
        header = 16
    elif size == 0:
        raise BoxFormatError(f"box {typ!r} extends to end of file; not allowed in a live stream")
    if size < header:
        raise BoxFormatError(f"box {typ!r} has impossible size {size}")
    return size, typ, header


class BoxReader:
    """Feed bytes in any chunking; get back every top-level box completed so far."""

    def __init__(self, max_box_bytes: int = 64 << 20) -> None:
        self._buf = bytearray()
        self._max = max_box_bytes

    def feed(self, chunk: bytes) -> list[Box]:
        self._buf += chunk
        boxes: list[Box] = []
        pos = 0
        while (head := _header(self._buf, pos, len(self._buf))) is not None:
            size, typ, header = head
            if size > self._max:
                raise BoxFormatError(f"box {typ!r} of {size} bytes exceeds the {self._max} byte limit")
            if len(self._buf) - pos < size:
                break
            boxes.append(Box(typ, bytes(self._buf[pos : pos + size]), header))
            pos += size
        del self._buf[:pos]
        return boxes

    @property
    def pending_bytes(self) -> int:
        return len(self._buf)


def children(payload: bytes) -> Iterator[Box]:
    """The boxes inside a container's payload."""
    pos = 0
    while pos < len(payload):
        head = _header(payload, pos, len(payload))
        if head is None:
            raise BoxFormatError("truncated child box")
        size, typ, header = head
        if pos + size > len(payload):
            raise BoxFormatError(f"child box {typ!r} overruns its parent")
        yield Box(typ, payload[pos : pos + size], header)
        pos += size


def find(payload: bytes, *path: bytes) -> Iterator[Box]:
    """Every box reached by following ``path`` (box types) from ``payload``."""
    head, *rest = path
    for box in children(payload):
        if box.type == head:
            if rest:
                yield from find(box.payload, *rest)
            else:
                yield box


def full_box(payload: bytes) -> tuple[int, int, bytes]:
    """(version, flags, body) of a FullBox payload."""
    if len(payload) < 4:
        raise BoxFormatError("truncated full box")
    return payload[0], int.from_bytes(payload[1:4], "big"), payload[4:]
