"""Adapters for voice-agent frameworks.

Each adapter imports its framework lazily (``facestream.integrations.pipecat`` needs the
``[pipecat]`` extra, ``facestream.integrations.livekit`` the ``[livekit]`` extra), so importing
this package never requires either.
"""
