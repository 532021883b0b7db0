"""Low-latency HLS (RFC 8216bis): CMAF parts from ffmpeg, an in-memory part/segment timeline, playlists.

ffmpeg's HLS muxer cannot write ``EXT-X-PART``, so ffmpeg only encodes (fragmented MP4 on a pipe,
one fragment per part) and this package does the packaging:

    LlHlsSink.write(frame, audio)          -- same tick contract as hls.sink.HlsSink
      └─ ffmpeg → Fmp4Splitter → LlHlsTimeline (init, parts, segments; thread-safe)
                                       └─ render_timeline(timeline) → playlist text

How the server should wire it (per session, under ``/llhls/<id>/``):

* ``GET playlist.m3u8[?_HLS_msn=M[&_HLS_part=P]]`` (blocking reload, RFC 8216bis §6.2.5.2):
  ``state = timeline.readiness(M, P)``; ``Readiness.BAD_REQUEST`` → 400 at once; ``READY`` →
  200 with ``render_timeline(timeline)``; ``WAIT`` → hold the request without blocking the event
  loop: ``await asyncio.to_thread(timeline.wait_until, M, P, timeout)`` (timeout ≈ 3 × target
  duration, then 503 per the RFC), and respond as for READY. Without query params respond at once.
  ``_HLS_skip`` (delta updates) is not supported (no ``CAN-SKIP-UNTIL`` is advertised).
* ``GET init.mp4`` / ``seg_<msn>.m4s`` / ``part_<msn>_<i>.m4s``: ``timeline.resource(name)``;
  None → 404, except that a request for the part named by the playlist's ``EXT-X-PRELOAD-HINT``
  (``timeline.snapshot().next_part``) should be held like a blocking reload
  (``wait_until(msn, i)`` then ``resource``), which is what the hint is for.
  Content types: ``application/vnd.apple.mpegurl`` for the playlist, ``video/mp4`` for the rest;
  ``Cache-Control: no-cache`` on playlists, long max-age on parts/segments (they never change).
* ``timeline.resource`` only ever resolves names it produced (a fixed pattern), never a path.
"""
