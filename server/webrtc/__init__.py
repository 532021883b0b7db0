"""WebRTC output (and microphone input) of a session's timeline, with aiortc."""
