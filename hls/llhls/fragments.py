"""Fragmented MP4 → an init segment and timed fragments (``moof`` + ``mdat`` pairs).

Only what a live packager needs is parsed: per track its timescale and kind (from ``moov``),
per fragment each track's base decode time, duration and whether its first sample is a sync
sample (from ``tfhd``/``tfdt``/``trun``, falling back to ``trex`` defaults). A fragment whose
video starts on a sync sample can start an HLS segment (``INDEPENDENT=YES``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from hls.llhls.boxes import Box, BoxFormatError, BoxReader, children, find, full_box

T = TypeVar("T")
_NON_SYNC = 0x00010000  # sample_is_non_sync_sample bit of sample flags


@dataclass(frozen=True, slots=True)
class Track:
    track_id: int
    timescale: int
    kind: str  # "vide", "soun", ...
    default_duration: int = 0
    default_flags: int = 0


@dataclass(frozen=True, slots=True)
class InitSegment:
    data: bytes  # ftyp + moov, served as the EXT-X-MAP
    tracks: dict[int, Track]


@dataclass(frozen=True, slots=True)
class TrackRun:
    track_id: int
    base_time: int  # in the track's timescale
    duration: int  # in the track's timescale
    samples: int
    starts_with_sync: bool


@dataclass(frozen=True, slots=True)
class Fragment:
    sequence: int  # mfhd sequence number
    data: bytes  # moof + mdat, served as (part of) a part
    runs: dict[int, TrackRun] = field(default_factory=dict)


def _one(payload: bytes, *path: bytes) -> Box:
    box = next(find(payload, *path), None)
    if box is None:
        raise BoxFormatError(f"missing {b'/'.join(path).decode('ascii', 'replace')} box")
    return box


def _tracks(moov: bytes) -> dict[int, Track]:
    trex: dict[int, tuple[int, int]] = {}
    for box in find(moov, b"mvex", b"trex"):
        _, _, body = full_box(box.payload)
        tid, _desc, dur, _size, flags = struct.unpack_from(">IIIII", body)
        trex[tid] = (dur, flags)
    tracks: dict[int, Track] = {}
    for trak in find(moov, b"trak"):
        tkhd = _one(trak.payload, b"tkhd")
        version, _, body = full_box(tkhd.payload)
        (tid,) = struct.unpack_from(">I", body, 16 if version == 1 else 8)
        mdhd = _one(trak.payload, b"mdia", b"mdhd")
        version, _, body = full_box(mdhd.payload)
        (timescale,) = struct.unpack_from(">I", body, 16 if version == 1 else 8)
        hdlr = _one(trak.payload, b"mdia", b"hdlr")
        kind = full_box(hdlr.payload)[2][4:8].decode("ascii", "replace")
        dur, flags = trex.get(tid, (0, 0))
        tracks[tid] = Track(tid, timescale, kind, dur, flags)
    if not tracks:
        raise BoxFormatError("moov has no tracks")
    return tracks


def _track_run(traf: bytes, tracks: dict[int, Track]) -> TrackRun:
    _, tf_flags, body = full_box(_one(traf, b"tfhd").payload)
    (tid,) = struct.unpack_from(">I", body)
    track = tracks.get(tid)
    if track is None:
        raise BoxFormatError(f"fragment refers to unknown track {tid}")
    pos, default_duration, default_flags = 4, track.default_duration, track.default_flags
    if tf_flags & 0x01:  # base-data-offset
        pos += 8
    if tf_flags & 0x02:  # sample-description-index
        pos += 4
    if tf_flags & 0x08:
        (default_duration,) = struct.unpack_from(">I", body, pos)
        pos += 4
    if tf_flags & 0x10:  # default-sample-size
        pos += 4
    if tf_flags & 0x20:
        (default_flags,) = struct.unpack_from(">I", body, pos)
    version, _, tfdt = full_box(_one(traf, b"tfdt").payload)
    base = struct.unpack_from(">Q" if version == 1 else ">I", tfdt)[0]
    duration, samples, first_flags = 0, 0, None
    for trun in find(traf, b"trun"):
        _, tr_flags, body = full_box(trun.payload)
        (count,) = struct.unpack_from(">I", body)
        pos = 4 + (4 if tr_flags & 0x01 else 0)
        first_sample_flags = None
        if tr_flags & 0x04:
            (first_sample_flags,) = struct.unpack_from(">I", body, pos)
            pos += 4
        for i in range(count):
            d, f = default_duration, default_flags
            if tr_flags & 0x100:
                (d,) = struct.unpack_from(">I", body, pos)
                pos += 4
            if tr_flags & 0x200:
                pos += 4
            if tr_flags & 0x400:
                (f,) = struct.unpack_from(">I", body, pos)
                pos += 4
            if tr_flags & 0x800:
                pos += 4
            if i == 0 and first_sample_flags is not None:
                f = first_sample_flags
            if first_flags is None:
                first_flags = f
            duration += d
        samples += count
    sync = first_flags is not None and not first_flags & _NON_SYNC
    return TrackRun(tid, base, duration, samples, sync)


def parse_fragment(moof: Box, mdat: Box, tracks: dict[int, Track]) -> Fragment:
    _, _, body = full_box(_one(moof.payload, b"mfhd").payload)
    (sequence,) = struct.unpack_from(">I", body)
    runs = {}
    for traf in find(moof.payload, b"traf"):
        run = _track_run(traf.payload, tracks)
        runs[run.track_id] = run
    return Fragment(sequence, moof.data + mdat.data, runs)


def _checked(fn: Callable[..., T], *args: object) -> T:
    """Truncated fields surface as BoxFormatError, like every other malformation."""
    try:
        return fn(*args)
    except struct.error as e:
        raise BoxFormatError(f"truncated box field: {e}") from e


def _patch_tfdt(traf: Box, shifts: dict[int, int]) -> bytes:
    """``traf`` with its ``tfdt`` base decode time moved by its track's shift (other boxes as they were)."""
    _, _, body = full_box(_one(traf.payload, b"tfhd").payload)
    (tid,) = struct.unpack_from(">I", body)
    shift = shifts.get(tid, 0)
    out = bytearray(traf.data[: traf.header_size])
    for child in children(traf.payload):
        if child.type == b"tfdt" and shift:
            version = child.payload[0]
            fmt = ">Q" if version == 1 else ">I"
            pos = child.header_size + 4
            (base,) = struct.unpack_from(fmt, child.data, pos)
            moved = base + shift
            if moved < 0 or (version == 0 and moved >= 1 << 32):
                raise BoxFormatError(f"tfdt of track {tid} cannot be moved by {shift}")
            patched = bytearray(child.data)
            struct.pack_into(fmt, patched, pos, moved)
            out += patched
        else:
            out += child.data
    return bytes(out)


def shift_fragment(frag: Fragment, shifts: dict[int, int], sequence_shift: int = 0) -> Fragment:
    """The same fragment with every track's decode times moved by ``shifts[track_id]`` (in that
    track's timescale) and its ``mfhd`` sequence number by ``sequence_shift``.

    Why: after an encoder restart the new ffmpeg starts its clock (and fragment numbering) at 0
    again; moving its fragments to the end of what was published keeps media time monotonic
    across the discontinuity, so the archived segments still concatenate into one valid fMP4
    (the session recording) and the playlist's timing needs no second clock. Sizes do not change
    (fields are rewritten in place), so ``trun`` data offsets stay valid.
    """
    if not any(shifts.values()) and not sequence_shift:
        return frag
    reader = BoxReader()
    boxes = reader.feed(frag.data)
    if len(boxes) != 2 or boxes[0].type != b"moof" or reader.pending_bytes:
        raise BoxFormatError("a fragment must be exactly one moof and one mdat")
    moof, mdat = boxes
    out = bytearray(moof.data[: moof.header_size])
    for child in children(moof.payload):
        if child.type == b"traf":
            out += _checked(_patch_tfdt, child, shifts)
        elif child.type == b"mfhd" and sequence_shift:
            patched = bytearray(child.data)
            pos = child.header_size + 4
            (seq,) = struct.unpack_from(">I", patched, pos)
            struct.pack_into(">I", patched, pos, (seq + sequence_shift) & 0xFFFFFFFF)
            out += patched
        else:
            out += child.data
    runs = {
        tid: TrackRun(r.track_id, r.base_time + shifts.get(tid, 0), r.duration, r.samples, r.starts_with_sync)
        for tid, r in frag.runs.items()
    }
    return Fragment((frag.sequence + sequence_shift) & 0xFFFFFFFF, bytes(out) + mdat.data, runs)


class Fmp4Splitter:
    """Bytes of a fragmented MP4 in, ``InitSegment`` then ``Fragment``s out, as soon as complete."""

    def __init__(self) -> None:
        self._reader = BoxReader()
        self._head: list[Box] = []
        self._tracks: dict[int, Track] | None = None
        self._moof: Box | None = None

    def feed(self, chunk: bytes) -> list[InitSegment | Fragment]:
        out: list[InitSegment | Fragment] = []
        for box in self._reader.feed(chunk):
            if self._tracks is None:
                self._head.append(box)
                if box.type == b"moov":
                    self._tracks = _checked(_tracks, box.payload)
                    out.append(InitSegment(b"".join(b.data for b in self._head), self._tracks))
                    self._head = []
            elif box.type == b"moof":
                self._moof = box
            elif box.type == b"mdat":
                if self._moof is None:
                    raise BoxFormatError("mdat without a preceding moof")
                out.append(_checked(parse_fragment, self._moof, box, self._tracks))
                self._moof = None
            # styp, sidx, prft, mfra, ... carry nothing a live playlist needs
        return out


__all__ = [
    "Fmp4Splitter", "Fragment", "InitSegment", "Track", "TrackRun", "children", "parse_fragment",
    "shift_fragment",
]  # fmt: skip
