"""The thread pool of live ingest: decode and resample of speech that a session plays in < 1 s.

Why its own pool: the executor's ``blocking`` pool (2 low-priority threads) also runs face analysis
(~0.1–1 s per init), recording remux (ffmpeg, up to minutes for a long session), session close
(joins threads, ends ffmpeg) and whole-audio decode. A feed queued behind those would arrive after
its scheduled start, so the stream would play silence where speech was due. Live feeds
(``POST …/feed``, WebSocket PCM, WebRTC microphone) run here instead, at normal priority.

Bounded: every live feed holds its session's ``feed_order`` lock while its job waits, so at most
one job per session (plus one per concurrent finalize/interrupt) is ever queued.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

LIVE_INGEST_WORKERS = 2
"""Decode + resample of a 1 s chunk is ~1–5 ms; two threads keep one slow decode (a large FLAC)
from delaying every other session's chunk."""


def live_ingest_pool(workers: int = LIVE_INGEST_WORKERS) -> ThreadPoolExecutor:
    """A new pool for live ingest; its owner (the registry) shuts it down."""
    return ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="live-ingest")
