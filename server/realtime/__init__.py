"""Sub-second real-time edges: the tick fan-out viewers read, the WebSocket/SSE protocol, events.

Nothing here owns a session; the session implements ``port.RealtimeSessionPort`` and the routes
reach it only through that port.
"""
