"""facestream as a library: the talking-head face of a voice agent.

``facestream.integrations`` holds the framework adapters (Pipecat, LiveKit Agents) around one
transport-agnostic core, ``facestream.avatar.AvatarStream``: speech audio in, paced video frames
with their audio out, idle animation in silence, barge-in. The server (``server``) and the engines
(``models``) ship in the same distribution.
"""

__all__: list[str] = []
