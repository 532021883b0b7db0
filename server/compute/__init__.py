"""③ Compute: the engine executor and the jobs that run on it.

``executor`` (``InferenceExecutor``: live frames earliest deadline first, plus a low-priority
blocking pool), ``pools`` (separate pools so live ingest never waits behind slow work),
``avatar`` (an upload becomes an ``Avatar``), ``offline`` (the whole-audio render loop),
``batch`` (MP4 renders with a concurrency cap), ``render_file`` (the CLI's offline render).
"""
