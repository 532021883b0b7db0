"""WebRTC settings as they appear in ``Settings`` (``FACESTREAM_WEBRTC_ICE_SERVERS`` is JSON).

Example: ``FACESTREAM_WEBRTC_ICE_SERVERS='[{"urls": ["stun:stun.example.org:3478"]},
{"urls": "turn:turn.example.org:3478", "username": "u", "credential": "p"}]'``. None are needed on a
LAN: host candidates pair directly.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator


class IceServerSetting(BaseModel):
    """One STUN/TURN server, in the browser's ``RTCIceServer`` shape."""

    urls: list[str] = Field(min_length=1)
    username: str | None = None
    credential: str | None = None

    @field_validator("urls", mode="before")
    @classmethod
    def _one_or_many(cls, v: object) -> object:
        return [v] if isinstance(v, str) else v

    @field_validator("urls")
    @classmethod
    def _schemes(cls, v: list[str]) -> list[str]:
        for url in v:
            if not url.startswith(("stun:", "stuns:", "turn:", "turns:")):
                raise ValueError(f"ICE server URL {url!r} must start with stun:, stuns:, turn: or turns:")
        return v
