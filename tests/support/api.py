"""Client-side helpers for the chunked API: init, feed, wait for a status (plain httpx calls)."""

from __future__ import annotations

import time

import httpx


def auth_headers(token: str | None) -> dict[str, str]:
    """``Authorization: Bearer`` for an API key or session token; nothing without one."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def post_init(client: httpx.Client, image: bytes, token: str | None = None, **fields) -> httpx.Response:
    return client.post(
        "/api/audio-driven/chunked/init",
        files={"image": ("face.jpg", image, "image/jpeg")},
        data={k: str(v) for k, v in fields.items()},
        headers=auth_headers(token),
    )


def init_session(client: httpx.Client, image: bytes, **fields) -> dict:
    r = post_init(client, image, **fields)
    assert r.status_code == 200, r.text
    return r.json()


def feed(
    client: httpx.Client, sid: str, data: bytes, final: bool = False, token: str | None = None
) -> httpx.Response:
    return client.post(
        "/api/audio-driven/chunked/feed",
        params={"session_id": sid},  # the affinity key a balancer routes on, as the clients send it
        data={"session_id": sid, "is_final_chunk": "true" if final else "false"},
        files={"audio_chunk": ("chunk.bin", data, "application/octet-stream")},
        headers=auth_headers(token),
    )


def wait_status(client: httpx.Client, sid: str, want: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        st = client.get(f"/api/audio-driven/chunked/status/{sid}").json()
        if st["status"] == want or time.monotonic() > deadline:
            return st
        time.sleep(0.1)
