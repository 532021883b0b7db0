"""Low-latency HLS (RFC 8216bis): CMAF parts from ffmpeg, an in-memory part/segment timeline, playlists.

ffmpeg's HLS muxer cannot write ``EXT-X-PART``, so ffmpeg only encodes (fragmented MP4 on a pipe,
one fragment per part) and this package does the packaging:

    LlHlsSink.write(frame, audio)          -- same tick contract as hls.sink.HlsSink
      └─ ffmpeg → Fmp4Splitter → LlHlsTimeline (init, parts, segments; thread-safe)
                                       └─ render_timeline(timeline) → playlist text

How the server wires it (``hls_mode="ll"``): ``server.sinks.llhls`` builds the session's sink (its
only encoder; ``out_dir`` archives finished segments for the recording, ``segment_paths``),
``server.sinks.llhls_live.LlHlsLive`` turns ``LlHlsTimeline.add_listener`` notifications into asyncio
wake-ups (no thread per blocked viewer) and caches the rendered playlist per ``version``, and
``server.api.llhls`` serves ``/hls/<id>/playlist.m3u8[?_HLS_msn=M[&_HLS_part=P]]`` (400 beyond
last + 2, 503 after the block timeout), ``init.mp4``, ``seg_<msn>.m4s`` and ``part_<msn>_<i>.m4s``
(a request for the preload-hinted part is held until it is complete). ``timeline.resource`` only
ever resolves names it produced (a fixed pattern), never a path. ``_HLS_skip`` (delta updates) is
not supported (no ``CAN-SKIP-UNTIL`` is advertised).
"""
