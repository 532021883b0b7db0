"""Hostile input against a real uvicorn (probe engine): property-based fields for every endpoint,
broken media and requests, path-like ids. Outcome: only documented 4xx, no 5xx, no hang, and no
file outside the storage dir touched (a sentinel tree is snapshotted before and after)."""

from __future__ import annotations

import io
import re
import struct
import subprocess
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.api import init_session
from tests.support.media import wav_bytes
from tests.support.processes import ffmpeg_children, metric_values, probe_app, tree_snapshot

API = "/api/audio-driven/chunked"
DOCUMENTED = {400, 404, 405, 409, 413, 422, 429, 503}
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)


@pytest.fixture(scope="module")
def world(tmp_path_factory, sample_face_path):
    """(client, storage, root, live session id): one server for the whole module."""
    root = tmp_path_factory.mktemp("fuzz")
    sentinel = root / "sentinel"
    sentinel.mkdir()
    (sentinel / "victim.txt").write_text("must survive")
    (root / "x").write_text("sibling named like a traversal target")
    with probe_app(root, rate_limit_per_s=0, max_sessions=3, max_chunk_seconds=5) as (client, s, _):
        sid = init_session(client, sample_face_path.read_bytes())["session_id"]
        before = tree_snapshot(root, exclude=s.storage_dir)
        yield client, s.storage_dir, root, sid
        assert tree_snapshot(root, exclude=s.storage_dir) == before  # nothing outside storage changed
        values = metric_values(client.get("/metrics").text)
        assert not [k for k in values if 'status="5' in k], values
    assert not ffmpeg_children()


def _ok(r: httpx.Response, allowed: set[int] = DOCUMENTED) -> None:
    assert r.status_code in allowed, (r.status_code, r.text[:300])
    if r.status_code >= 400:
        assert r.json()["status"] == "error" and r.json()["message"]


field_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "nan", "inf", "-inf", "1e309", "0", "-1", "true", "[1,2,3]", "[1e999,0,0]", "null"]),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
)
INIT_FIELDS = [
    "crop",
    "seed",
    "nfe",
    "cfg_scale",
    "chunk_duration",
    "audio_sample_rate",
    "pose_style",
    "gaze_style",
]


@FUZZ
@given(
    fields=st.dictionaries(st.sampled_from(INIT_FIELDS), field_text, max_size=5), image=st.binary(max_size=64)
)
def test_init_fields_and_junk_images_are_4xx(world, fields, image) -> None:
    client, *_ = world
    r = client.post(f"{API}/init", data=fields, files={"image": ("x.png", image, "image/png")})
    _ok(r)


@FUZZ
@given(sid=st.text(max_size=48), final=field_text, chunk=st.binary(max_size=512))
def test_feed_with_arbitrary_ids_flags_and_bytes_is_4xx(world, sid, final, chunk) -> None:
    client = world[0]
    r = client.post(
        f"{API}/feed",
        data={"session_id": sid, "is_final_chunk": final},
        files={"audio_chunk": ("c.bin", chunk, "application/octet-stream")},
    )
    _ok(r)


@FUZZ
@given(chunk=st.binary(min_size=1, max_size=2048), final=st.sampled_from(["false", "0", "no", ""]))
def test_arbitrary_bytes_into_a_live_session_are_accepted_or_4xx(world, chunk, final) -> None:
    client, _, _, live = world
    r = client.post(
        f"{API}/feed",
        data={"session_id": live, "is_final_chunk": final},
        files={"audio_chunk": ("c.bin", chunk, "application/octet-stream")},
    )
    _ok(r, DOCUMENTED | {200})


PATH_IDS = [
    "../x", "..%2fx", "%2e%2e%2fx", "..%252fx", "/etc/passwd", "%2fetc%2fpasswd", "..\\x", "sentinel",
    "../sentinel/victim.txt", "..%2Fsentinel%2Fvictim.txt", "ｘ" * 32, "é" * 32, "A" * 32, "0" * 31 + "g",
    "%00", "0" * 32 + "%00", "0" * 32 + "/../../x", " " + "0" * 31, "\u202e" + "0" * 31,
]  # fmt: skip


@pytest.mark.parametrize("sid", PATH_IDS)
def test_path_like_ids_are_404_everywhere_and_touch_nothing(world, sid) -> None:
    client, _, root, _ = world
    for method, url in (
        ("GET", f"{API}/status/{sid}"),
        ("DELETE", f"{API}/session/{sid}"),
        ("GET", f"/hls/{sid}/playlist.m3u8"),
        ("GET", f"/hls/{sid}/seg_00001.ts"),
        ("GET", f"/hls/0123456789abcdef0123456789abcdef/{sid}"),
    ):
        r = client.request(method, url)
        assert r.status_code == 404, (method, url, r.status_code, r.text[:200])
    r = client.post(f"{API}/feed", data={"session_id": sid}, files={"audio_chunk": ("c", b"\0\0")})
    assert r.status_code == 404, (sid, r.status_code, r.text[:200])
    assert (root / "sentinel" / "victim.txt").read_text() == "must survive" and (root / "x").exists()


@st.composite
def hls_names(draw):
    printable = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=30)  # httpx refuses others
    return draw(st.one_of(printable, st.from_regex(r"seg_[0-9]{1,12}\.(ts|m3u8|mp4)", fullmatch=True)))


@FUZZ
@given(name=hls_names())
def test_hls_file_names_outside_the_two_shapes_are_404(world, name) -> None:
    client, _, _, live = world
    r = client.get(f"/hls/{live}/{name}")
    if r.status_code == 200:  # only a real playlist/segment/part name of the live session is served
        assert re.fullmatch(r"[A-Za-z0-9_.]+\.(m3u8|ts|mp4|m4s)", name), name
    else:
        assert r.status_code == 404, (name, r.status_code, r.text[:200])


def _wav_claiming_hours(hours: float, rate: int = 16000) -> bytes:
    data = np.zeros(1600, "<i2").tobytes()
    claimed = int(hours * 3600 * rate * 2)
    head = (
        b"RIFF"
        + struct.pack("<I", 36 + claimed)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    )
    return head + b"data" + struct.pack("<I", claimed) + data


def _float_wav(values: np.ndarray, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, values.astype(np.float32), rate, format="WAV", subtype="FLOAT")
    return buf.getvalue()


def _mp3(ffmpeg: str, tmp: Path) -> bytes:
    out = tmp / "tone.mp3"
    subprocess.run(
        [ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "sine=f=300:d=1", "-c:a", "libmp3lame", str(out)],
        check=True,
        timeout=30,
    )
    return out.read_bytes()


def test_broken_media_is_refused_with_clear_4xx(world, ffmpeg, tmp_path) -> None:
    client, _, _, live = world
    tone = np.sin(np.linspace(0, 300, 16000)).astype(np.float32) * 0.3
    good_wav = wav_bytes(tone, 16000)
    nan = tone.copy()
    nan[100] = np.nan
    inf = tone.copy()
    inf[5] = np.inf
    mp3 = _mp3(ffmpeg, tmp_path) if Path(ffmpeg).exists() else b""
    cases = {
        "truncated wav": good_wav[:30],
        "truncated wav data": good_wav[: len(good_wav) // 3 + 1],
        "nan float wav": _float_wav(nan),
        "inf float wav": _float_wav(inf),
        "10 hour wav header": _wav_claiming_hours(10),
        "truncated mp3": mp3[:200],
        "garbage after RIFF": b"RIFF\xff\xff\xff\xffWAVE" + b"\x00" * 7,
        "odd raw pcm": b"\x01\x02\x03",
        "ogg magic only": b"OggS" + b"\x00" * 50,
        "flac magic only": b"fLaC" + b"\xff" * 30,
    }
    for name, data in cases.items():
        r = client.post(
            f"{API}/feed",
            data={"session_id": live, "is_final_chunk": "false"},
            files={"audio_chunk": ("a.wav", data, "audio/wav")},
        )
        _ok(r, DOCUMENTED | ({200} if name in ("truncated wav data", "10 hour wav header") else set()))
        if name in ("nan float wav", "inf float wav"):
            assert r.status_code == 400 and "NaN or infinite" in r.json()["message"], r.text
    assert client.get(f"{API}/status/{live}").json()["status"] == "streaming"


def test_wrong_content_types_and_malformed_multipart_are_4xx(world) -> None:
    client, _, _, live = world
    requests = [
        ("POST", f"{API}/init", {"json": {"image": "x"}}),
        ("POST", f"{API}/init", {"content": b"hello", "headers": {"content-type": "text/plain"}}),
        (
            "POST",
            f"{API}/init",
            {"content": b"--zz\r\nbroken", "headers": {"content-type": "multipart/form-data; boundary=zz"}},
        ),
        ("POST", f"{API}/init", {"content": b"x" * 100, "headers": {"content-type": "multipart/form-data"}}),
        (
            "POST",
            f"{API}/feed",
            {"content": b"", "headers": {"content-type": "multipart/form-data; boundary=zz"}},
        ),
        ("POST", f"{API}/feed", {"data": {"session_id": live, "audio_chunk": "not a file"}}),
        ("POST", f"{API}/feed", {"files": {"audio_chunk": ("a", b"\0\0")}}),
        ("POST", f"{API}/init", {"files": {"image": ("a", b"")}}),
        ("POST", f"{API}/init", {"files": {"image": ("a", b"\x89PNG\r\n\x1a\n" + b"\0" * 40)}}),
        ("PUT", f"{API}/init", {}),
        ("GET", f"{API}/feed", {}),
    ]
    for method, url, kwargs in requests:
        _ok(client.request(method, url, **kwargs))
    many = {f"f{i}": "v" for i in range(2000)}  # more fields than the parser allows
    _ok(client.post(f"{API}/feed", data=many, files={"audio_chunk": ("a", b"\0\0")}))
