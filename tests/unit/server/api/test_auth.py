"""Units of server.api.auth / owners / ratelimit / guards / deadlines (issue 13): tokens, the
authorization matrix, key rotation, log redaction, the exposure refusal, proxy addresses, listener
caps, quotas, PNG chunk tables, WebRTC offer directions, settings parsing, and the CLI refusal."""

from __future__ import annotations

import logging
import struct
import subprocess
import sys
import zlib

import pytest
from starlette.requests import Request

from server.api.auth import (
    Access,
    Authenticator,
    Client,
    RedactTokens,
    TokenSigner,
    exposure_problem,
    fingerprint,
    host_is_loopback,
    redact,
)
from server.api.guards import MAX_PNG_CHUNKS, check_png_structure
from server.api.owners import SessionOwners, session_quota
from server.api.ratelimit import ListenerLimits, MessageBucket, ProxyResolver
from server.errors import (
    AuthenticationError,
    ForbiddenError,
    PayloadTooLargeError,
    QuotaExceededError,
    TooManyViewersError,
    status_for,
)
from server.settings import Settings

SID, SID2 = "a" * 32, "b" * 32


def _conn(
    headers: dict[str, str] | None = None, query: str = "", client: str = "127.0.0.1", **path
) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {"type": "http", "headers": raw, "query_string": query.encode(), "client": (client, 1234),
             "path_params": path, "method": "GET", "path": "/"}  # fmt: skip
    return Request(scope)


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def test_tokens_are_per_session_and_viewer_tokens_expire() -> None:
    clock = Clock()
    signer = TokenSigner(b"s" * 32, clock)
    token = signer.session_token(SID)
    assert signer.is_session_token(token, SID) and not signer.is_session_token(token, SID2)
    assert TokenSigner(b"t" * 32, clock).is_session_token(token, SID) is False  # another secret
    viewer = signer.viewer_token(SID, ttl_s=60)
    assert signer.is_viewer_token(viewer, SID) and not signer.is_viewer_token(viewer, SID2)
    assert not signer.is_session_token(viewer, SID)  # watching never grants control
    forged = viewer.replace(viewer.split(".")[0][4:], format(int(clock.t + 10**6), "x"))
    assert not signer.is_viewer_token(forged, SID)  # a later expiry breaks the signature
    clock.t += 61
    assert not signer.is_viewer_token(viewer, SID)


@pytest.mark.parametrize(
    ("cred", "need", "outcome"),
    [
        (None, Access.CONTROL, AuthenticationError),
        ("garbage", Access.CONTROL, AuthenticationError),
        ("viewer", Access.CONTROL, ForbiddenError),
        ("viewer", Access.WATCH, None),
        ("other", Access.CONTROL, ForbiddenError),
        ("other", Access.WATCH, ForbiddenError),
        ("right", Access.CONTROL, None),
        ("right", Access.WATCH, None),
        ("owner-key", Access.CONTROL, None),
        ("other-key", Access.CONTROL, ForbiddenError),
    ],
)
def test_authorization_matrix(cred, need, outcome) -> None:
    auth = Authenticator(["key-one-123", "key-two-456"], secret=b"x" * 32)
    grants, other = auth.grants(SID), auth.grants(SID2)
    value = {
        None: None, "garbage": "garbage", "viewer": grants["viewer_token"], "other": other["session_token"],
        "right": grants["session_token"], "owner-key": "key-one-123", "other-key": "key-two-456",
    }[cred]  # fmt: skip
    conn = _conn({"Authorization": f"Bearer {value}"} if value else {})
    owners = {SID: fingerprint("key-one-123")}
    if outcome is None:
        auth.authorize(conn, SID, need, owners.get)
    else:
        with pytest.raises(outcome):
            auth.authorize(conn, SID, need, owners.get)


def test_credentials_from_every_carrier_and_keys_rotate() -> None:
    auth = Authenticator(["old-key-aaaa", "new-key-bbbb"], secret=b"x" * 32)
    assert auth.client(_conn({"X-API-Key": "old-key-aaaa"})).id == fingerprint("old-key-aaaa")
    assert auth.client(_conn({"Authorization": "Bearer new-key-bbbb"})).id == fingerprint("new-key-bbbb")
    assert auth.client(_conn(query="token=new-key-bbbb")).id == fingerprint("new-key-bbbb")
    with pytest.raises(AuthenticationError):
        auth.client(_conn({"Authorization": "Basic new-key-bbbb"}))
    with pytest.raises(AuthenticationError):
        auth.client(_conn({"X-API-Key": "old-key-aaaa-but-longer"}))
    viewer = auth.grants(SID)["viewer_token"]
    auth.authorize(_conn(capability=viewer), SID, Access.WATCH, lambda _: None)  # the HLS path segment
    assert fingerprint("old-key-aaaa") not in ("old-key-aaaa",) and len(fingerprint("x")) == 12
    open_auth = Authenticator()
    assert not open_auth.active
    open_auth.authorize(_conn(), SID, Access.CONTROL, lambda _: None)  # curl flow: nothing needed
    assert open_auth.client(_conn(client="10.1.2.3")) == Client("ip:10.1.2.3", False)
    assert Authenticator(require_session_token=True).active


def test_grants_put_the_viewer_token_in_the_hls_path_only_when_active() -> None:
    on = Authenticator(["k" * 12]).grants(SID)
    assert on["hls_url"] == f"/hls/{SID}/{on['viewer_token']}/playlist.m3u8" == on["viewer_url"]
    off = Authenticator().grants(SID)
    assert off["hls_url"] == f"/hls/{SID}/playlist.m3u8"


def test_tokens_are_redacted_from_logs() -> None:
    auth = Authenticator(["k" * 12])
    g = auth.grants(SID)
    line = f"GET {g['hls_url']} ws?token={g['session_token']}&x=1 Bearer {g['session_token']}"
    clean = redact(line)
    assert g["viewer_token"] not in clean and g["session_token"] not in clean and "&x=1" in clean
    record = logging.LogRecord(
        "uvicorn.access", 20, "", 0, '%s - "%s %s"', ("1.2.3.4", "GET", g["hls_url"]), None
    )
    RedactTokens().filter(record)
    assert g["viewer_token"] not in record.getMessage()


def test_non_loopback_without_keys_is_refused_unless_insecure(tmp_path) -> None:
    base = {"storage_dir": tmp_path}
    assert exposure_problem(Settings(**base)) is None  # 127.0.0.1
    assert exposure_problem(Settings(**base, host="localhost")) is None
    assert "API keys" in exposure_problem(Settings(**base, host="0.0.0.0"))
    assert exposure_problem(Settings(**base, host="0.0.0.0", api_keys="k1,k2")) is None
    assert exposure_problem(Settings(**base, host="0.0.0.0", insecure=True)) is None
    assert host_is_loopback("::1") and not host_is_loopback("::") and not host_is_loopback("example.org")
    r = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--host", "0.0.0.0", "--port", "1",
         "--storage-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert r.returncode == 2 and "FACESTREAM_API_KEYS" in r.stderr and "--insecure" in r.stderr, r.stderr


def test_security_settings_parse_from_the_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("FACESTREAM_API_KEYS", " key-a , key-b,")
    monkeypatch.setenv("FACESTREAM_MAX_SESSIONS_PER_CLIENT", "3")
    monkeypatch.setenv("FACESTREAM_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.1")
    monkeypatch.setenv("FACESTREAM_CORS_ORIGINS", "https://app.example")
    s = Settings(storage_dir=tmp_path)
    assert [k.get_secret_value() for k in s.api_keys] == ["key-a", "key-b"]
    assert "key-a" not in repr(s)  # secrets stay out of reprs and logs
    assert s.max_sessions_per_client == 3 and s.cors_origins == ["https://app.example"]
    assert s.trusted_proxies == ["10.0.0.0/8", "192.168.1.1"]
    with pytest.raises(ValueError):
        Settings(storage_dir=tmp_path, trusted_proxies="not-an-ip")
    with pytest.raises(ValueError):
        Settings(storage_dir=tmp_path, token_secret="short")


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    scope = {"client": ("10.0.0.5", 1), "headers": [(b"x-forwarded-for", b"6.6.6.6, 203.0.113.7, 10.0.0.9")]}
    assert ProxyResolver().address(scope) == "10.0.0.5"  # no proxies configured: the peer
    trusted = ProxyResolver(["10.0.0.0/8"])
    assert trusted.address(scope) == "203.0.113.7"  # rightmost hop that is not a proxy
    assert trusted.address({**scope, "client": ("198.51.100.1", 1)}) == "198.51.100.1"  # not a proxy
    assert trusted.address({**scope, "headers": [(b"x-forwarded-for", b"junk")]}) == "10.0.0.5"


def test_listener_caps_and_message_budget() -> None:
    caps = ListenerLimits(per_session=2, per_client=3)
    caps.acquire("s1", "c1")
    caps.acquire("s1", "c1")
    with pytest.raises(TooManyViewersError):
        caps.acquire("s1", "c2")
    caps.acquire("s2", "c1")
    with pytest.raises(QuotaExceededError):
        caps.acquire("s3", "c1")
    with caps.hold("s3", "c2"):
        assert caps.of_session("s3") == 1
    assert caps.of_session("s3") == 0
    for s in ("s1", "s1", "s2"):
        caps.release(s, "c1")
    assert caps.of_client("c1") == 0
    clock = Clock()
    bucket = MessageBucket(10, 20, clock)
    assert sum(bucket.take() for _ in range(50)) == 20
    clock.t += 1.0
    assert sum(bucket.take() for _ in range(50)) == 10


def test_session_quota_and_owners(tmp_path) -> None:
    s = Settings(storage_dir=tmp_path, max_sessions=6)
    assert session_quota(s, Client("ip:127.0.0.1", loopback=True)) is None
    assert session_quota(s, Client("ip:203.0.113.1")) == 3
    assert session_quota(Settings(storage_dir=tmp_path, max_sessions_per_client=1), Client("x", True)) == 1
    owners = SessionOwners()
    live = {SID: True}
    client = Client("key:abc")
    with owners.admit(client, 1, live.get) as claim:
        claim(SID)
    with pytest.raises(QuotaExceededError) as e, owners.admit(client, 1, live.get):
        pass
    assert status_for(e.value) == 429
    live[SID] = False  # finished: still owned (the key may delete it), no longer counted
    with owners.admit(client, 1, live.get):
        pass
    assert owners.owner_of(SID) == "key:abc"
    del live[SID]  # gone: pruned
    with owners.admit(Client("other"), None, live.get):
        pass
    assert owners.owner_of(SID) is None


def _png(*chunks: tuple[bytes, bytes]) -> bytes:
    out = b"\x89PNG\r\n\x1a\n"
    for kind, data in chunks:
        out += struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return out


def test_png_chunk_table_caps() -> None:
    ok = _png((b"IHDR", b"\0" * 13), (b"IDAT", b"x" * 100), (b"IEND", b""))
    check_png_structure(ok)
    check_png_structure(b"\xff\xd8\xff not a png")
    with pytest.raises(PayloadTooLargeError):
        check_png_structure(_png((b"IHDR", b"\0" * 13), *[(b"tEXt", b"")] * (MAX_PNG_CHUNKS + 1)))
    with pytest.raises(PayloadTooLargeError):
        check_png_structure(_png((b"IHDR", b"\0" * 13), (b"iCCP", b"\0" * (5 * 1024 * 1024))))


def test_offer_direction_decides_watch_or_control() -> None:
    from server.sinks.webrtc.gateway import offer_sends_audio

    head = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
    audio = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\n"
    assert not offer_sends_audio(head + audio + "a=recvonly\r\n")
    assert offer_sends_audio(head + audio + "a=sendrecv\r\n")
    assert offer_sends_audio(head + audio)  # no direction: sendrecv
    assert offer_sends_audio("garbage")  # unparsable: needs the stronger right


def test_output_audio_of_cut_speech_is_freed() -> None:
    import numpy as np

    from server.session.audio.output_buffer import OutputAudioBuffer

    buf = OutputAudioBuffer(48_000)
    for _ in range(5):
        buf.append(np.zeros(48_000, np.float32))
    assert buf.held_samples == 240_000
    assert buf.drop_from(60_000) == 180_000 and buf.held_samples == 60_000
    buf.append(np.ones(10, np.float32))  # later speech continues at fresh positions
    assert buf.written == 240_010 and buf.held_samples == 60_010
