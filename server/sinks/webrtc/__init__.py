"""WebRTC output of a session's timeline (and microphone input), with aiortc: ``gateway`` (peers), ``tracks``, ``mic``, ``loopback``."""
