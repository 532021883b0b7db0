"""Handing freed heap memory back to the OS on a node that runs for weeks.

Why: in the soaks (benchmarks/soak.py, issue 18) the live data stays flat — the Python heap,
numpy frame buffers included, measured by ``--tracemalloc`` at 89–97 MiB for the whole run —
while the process's RSS rises by tens of MiB in the first minutes and then creeps. That is the
allocator, not a leak: glibc keeps the chunks a thread frees in that thread's arena for reuse,
and with dozens of threads (clocks, lanes, feeders, the event loop) handing 0.4–0.8 MB frame
buffers between them, every arena ends up holding its own high-water mark of free pages.
``malloc_trim(0)`` walks every arena and returns their free pages to the kernel (glibc ≥ 2.8
does this with ``madvise``, so chunks in use are never moved); it takes well under a millisecond
at this heap size and runs off the event loop. Other C libraries (musl) have no such call: the
trimmer then reports itself unavailable and does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable


class HeapTrimmer:
    """``trim()`` returns free heap pages of every malloc arena to the OS (glibc only)."""

    def __init__(self) -> None:
        self._malloc_trim: Callable[[int], int] | None = None
        name = ctypes.util.find_library("c")
        if name is None:
            return
        try:
            func = ctypes.CDLL(name).malloc_trim
        except (OSError, AttributeError):  # not glibc: nothing to trim with
            return
        func.argtypes = [ctypes.c_size_t]
        func.restype = ctypes.c_int
        self._malloc_trim = func

    @property
    def available(self) -> bool:
        return self._malloc_trim is not None

    def trim(self) -> bool:
        """True if memory was released. Blocking (ctypes drops the GIL): call from a thread."""
        if self._malloc_trim is None:
            return False
        return bool(self._malloc_trim(0))
