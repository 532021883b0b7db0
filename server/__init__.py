"""facestream's server, laid out in the order a request flows (each arrow an allowed import):

``app``/``cli`` → ``api`` → ``assembly`` → ``metrics`` → ``session`` → ``compute`` → ``sinks``
→ ``hls`` → ``models``; ``errors``, ``settings`` and ``logs`` are leaves every layer may import
(``tests/unit/test_layers.py`` enforces the direction and the absence of cycles).

* ``app.py`` — ``create_app``: settings → engine → executor → registry → gateway; ``api.mount``.
* ``cli.py`` — ``facestream serve | render``.
* ``api/`` — ① edges: parse and validate a request, call a session or a job; never build one.
* ``assembly.py`` — how a live session is put together (sink chain, engine stream, subscribers).
* ``metrics.py`` — Prometheus metrics, collected at scrape time over ``SessionLike``.
* ``session/`` — ② one live session = a 25 fps clock fed by scheduled speech; the registry.
* ``compute/`` — ③ the engine executor (earliest deadline first) and the jobs on it.
* ``sinks/`` — ④ what the clock feeds: HLS/LL-HLS writers, recordings, fan-out, WebRTC.
* ``errors.py`` — every domain error and THE table of HTTP statuses and WebSocket close codes.
* ``settings.py`` — ``Settings`` (pydantic, env ``FACESTREAM_*`` + CLI), validated once.
"""
