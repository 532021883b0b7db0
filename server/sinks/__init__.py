"""④ What a session's clock feeds, each implementing ``hls.base.TickSink`` or a subscriber.

``hls`` (the TS writer that restarts a dead ffmpeg), ``llhls``/``llhls_live`` (the LL-HLS writer
and its event-loop bridge), ``recording`` (segment retention and the MP4 remux), ``fanout`` (ticks
to real-time viewers), ``wakeup`` (thread → event-loop wake-ups), ``debug`` (barcode stamping
and arrival logs for latency measurements), ``webrtc/`` (aiortc peers, tracks, microphone input).
Sinks never import ``server.session`` or ``server.api``.
"""
