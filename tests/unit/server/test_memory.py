"""HeapTrimmer returns freed heap pages to the OS: RSS measured from /proc, before and after."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.memory import HeapTrimmer


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_freed_heap_pages_go_back_to_the_os() -> None:
    trimmer = HeapTrimmer()
    if not trimmer.available:
        pytest.skip("this C library has no malloc_trim (not glibc)")
    trimmer.trim()
    # 64 KiB blocks come from the heap (below glibc's mmap threshold); keeping the last one
    # pins the top of the heap, so free() alone cannot shrink it: the pages stay resident
    blocks = [bytearray(64 * 1024) for _ in range(2000)]  # ~125 MiB, touched (zero-filled)
    keep = blocks[-1]
    peak = _rss_mib()
    del blocks
    freed = _rss_mib()
    assert trimmer.trim()
    trimmed = _rss_mib()
    assert len(keep) == 64 * 1024
    assert freed - trimmed > 60, (peak, freed, trimmed)  # most of the ~125 MiB went back
