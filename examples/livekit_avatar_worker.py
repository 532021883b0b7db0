"""facestream as a LiveKit Agents avatar: the avatar worker.

The avatar joins the room as its own participant, receives the agent's TTS audio over the
``lk.audio_stream`` byte stream, answers ``lk.clear_buffer``, calls back ``lk.playback_started``
/ ``lk.playback_finished``, and publishes the talking head's audio and video:

    .venv-agent/bin/python examples/livekit_avatar_worker.py --url wss://my.livekit.host \\
        --token "$AVATAR_TOKEN" --image assets/sample_face.jpg [--agent-identity agent]

``AVATAR_TOKEN``: a room token for the identity ``facestream-avatar`` (e.g. ``lk token create
--join --room demo --identity facestream-avatar``). On the agent side, route the session's audio
to the avatar instead of the room and let the avatar publish it:

    from livekit.agents.voice.avatar import DataStreamAudioOutput
    session = AgentSession(stt=..., llm=..., tts=...)
    session.output.audio = DataStreamAudioOutput(ctx.room, destination_identity="facestream-avatar")
    await session.start(agent=MyAgent(), room=ctx.room,
                        room_output_options=RoomOutputOptions(audio_enabled=False))

Needs `pip install 'facestream[livekit]'` (and mediapipe --no-deps, see the README) and a LiveKit
server; without one, tests/integration/test_livekit_avatar.py runs the same worker in a fake room.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from facestream.integrations.livekit import run_avatar_worker
from facestream.runtime import AvatarOptions

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--url", default=os.environ.get("LIVEKIT_URL"), required="LIVEKIT_URL" not in os.environ
    )
    parser.add_argument(
        "--token", default=os.environ.get("AVATAR_TOKEN"), required="AVATAR_TOKEN" not in os.environ
    )
    parser.add_argument("--image", type=Path, default=Path("assets/sample_face.jpg"))
    parser.add_argument("--agent-identity", help="whose audio to play (default: the first agent participant)")
    parser.add_argument("--sample-rate", type=int, default=24_000, help="published audio rate")
    args = parser.parse_args()
    options = AvatarOptions(image=args.image, output_rate=args.sample_rate)
    asyncio.run(run_avatar_worker(args.url, args.token, options, agent_identity=args.agent_identity))
