"""② One live session = a 25 fps clock (docs/DESIGN.md); its pure parts take ``now``/playhead.

In flow order: ``ids`` (server-made ids) → ``registry`` (capacity, lookup, expiry, storage) →
``session`` (lifecycle: speech in, interrupt, subscribe, status) → ``speech``/``timeline`` (where
speech lands on the timeline, pure) → ``producer`` (keeps the engine ahead of the playhead) →
``frames`` (rendered frames waiting for their tick) → ``clock`` (tick n = frame n + audio slice n
→ sink + subscribers) → ``events`` (speech edges for WebSocket/SSE) → ``realtime`` (the session
seen by the real-time routes). ``progressive`` is the unclocked whole-audio kind; ``base`` holds
``SessionLike``, the contract both kinds satisfy. ``audio/`` decodes and buffers input audio.
"""
