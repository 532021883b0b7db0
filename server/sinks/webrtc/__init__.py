"""WebRTC output of a session's timeline (and microphone input), with aiortc.

``gateway`` (peers and their lifetimes), ``tracks`` (clock-paced video/audio), ``mic`` (an
offered audio track becomes speech), ``loopback`` (127.0.0.1 candidates for tests).
"""
