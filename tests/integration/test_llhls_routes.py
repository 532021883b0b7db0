"""LL-HLS served by the real app (``hls_mode="ll"``) on a real uvicorn: playlist validity, blocking
reload (RFC 8216bis §6.2.5.2), preload-hinted parts, strict names, headers, the recording input."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from hls.mp4 import remux_hls_to_mp4
from server.api.llhls import blocking_query
from server.app import create_app
from server.errors import BadBlockingRequestError
from server.settings import Settings
from tests.support.api import init_session
from tests.support.engines import ProbeEngine
from tests.support.servers import live_server

pytestmark = pytest.mark.slow
BLOCK_TIMEOUT_S = 1.0
PART_S = 0.2
_HINT = re.compile(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part_(\d+)_(\d+)\.m4s"')


@pytest.fixture(scope="module")
def server(tmp_path_factory, sample_face_path: Path):
    storage = tmp_path_factory.mktemp("llhls")
    settings = Settings(
        storage_dir=storage, static_dir=None, hls_mode="ll", llhls_block_timeout_s=BLOCK_TIMEOUT_S,
        keep_all_segments=True, warm_up=False,
    )  # fmt: skip
    app = create_app(settings, engine=ProbeEngine(size=128))
    with live_server(app) as url, httpx.Client(base_url=url, timeout=20) as client:
        answer = init_session(client, sample_face_path.read_bytes())
        assert answer["ll_hls"] is True
        assert answer["hls_url"] == f"/hls/{answer['session_id']}/playlist.m3u8"
        base = f"/hls/{answer['session_id']}"
        # block until segment 3 has its first part: two complete segments are listed by then
        for msn in (1, 2, 3, 3, 3):  # ≤ 2 segments ahead of the live edge (else 400); 503 = retry
            r = client.get(f"{base}/playlist.m3u8", params={"_HLS_msn": msn, "_HLS_part": 0}, timeout=10)
            assert r.status_code in (200, 503), r.text
        assert r.status_code == 200, r.text
        yield client, base, app, answer["session_id"]


def _attrs(line: str) -> dict[str, str]:
    body = line.split(":", 1)[1]
    return {k: v.strip('"') for k, v in re.findall(r'([A-Z-]+)=("[^"]*"|[^,]*)', body)}


def _hint(text: str) -> tuple[int, int]:
    m = _HINT.search(text)
    assert m, text
    return int(m.group(1)), int(m.group(2))


def test_playlist_tags_ordering_and_durations_are_consistent(server) -> None:
    client, base, _, _ = server
    r = client.get(f"{base}/playlist.m3u8")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert "no-cache" in r.headers["cache-control"]
    lines = r.text.splitlines()
    assert lines[0] == "#EXTM3U" and "#EXT-X-VERSION:9" in lines
    tags = {line.split(":", 1)[0]: line for line in lines if line.startswith("#")}
    target = int(tags["#EXT-X-TARGETDURATION"].split(":")[1])
    control = _attrs(tags["#EXT-X-SERVER-CONTROL"])
    part_target = float(_attrs(tags["#EXT-X-PART-INF"])["PART-TARGET"])
    assert control["CAN-BLOCK-RELOAD"] == "YES" and part_target == pytest.approx(PART_S)
    assert float(control["PART-HOLD-BACK"]) >= 3 * part_target - 1e-9
    assert _attrs(tags["#EXT-X-MAP"])["URI"] == "init.mp4" and "#EXT-X-PROGRAM-DATE-TIME" in tags
    assert "#EXT-X-ENDLIST" not in tags
    # walk segments: parts numbered 0.. within their segment, summing to the segment's EXTINF
    msn = int(tags["#EXT-X-MEDIA-SEQUENCE"].split(":")[1])
    parts: list[tuple[int, int, float, bool]] = []
    complete = 0
    for i, line in enumerate(lines):
        if line.startswith("#EXT-X-PART:"):
            a = _attrs(line)
            m = re.fullmatch(r"part_(\d+)_(\d+)\.m4s", a["URI"])
            assert m, a
            parts.append((int(m.group(1)), int(m.group(2)), float(a["DURATION"]), "INDEPENDENT" in a))
            assert float(a["DURATION"]) <= part_target + 1e-3
        elif line.startswith("#EXTINF:"):
            duration = float(line[8:].rstrip(","))
            assert lines[i + 1] == f"seg_{msn}.m4s" and duration <= target + 0.5
            mine = [p for p in parts if p[0] == msn]
            if mine:  # parts are listed for recent segments only
                assert [p[1] for p in mine] == list(range(len(mine)))
                assert sum(p[2] for p in mine) == pytest.approx(duration, abs=2e-3)
                assert mine[0][3], "a segment starts with an independent part"
            msn += 1
            complete += 1
    assert complete >= 2
    open_parts = [p for p in parts if p[0] == msn]
    assert [p[1] for p in open_parts] == list(range(len(open_parts)))
    assert _hint(r.text) == ((msn, len(open_parts)) if open_parts else (msn, 0))


def test_segments_are_their_parts_and_decode_after_the_init_segment(server, tmp_path: Path, probe) -> None:
    client, base, _, _ = server
    text = client.get(f"{base}/playlist.m3u8").text
    msn = int(re.findall(r"^seg_(\d+)\.m4s$", text, re.M)[-1])
    seg = client.get(f"{base}/seg_{msn}.m4s")
    assert seg.status_code == 200 and seg.headers["content-type"] == "video/mp4"
    assert "immutable" in seg.headers["cache-control"]
    names = re.findall(rf'URI="(part_{msn}_\d+\.m4s)"', text)
    assert seg.content == b"".join(client.get(f"{base}/{n}").content for n in names)
    init = client.get(f"{base}/init.mp4")
    assert init.status_code == 200 and init.content[4:8] == b"ftyp"
    media = tmp_path / "one.mp4"
    media.write_bytes(init.content + seg.content)
    streams = {s["codec_type"]: s for s in probe(media)["streams"]}
    assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "aac"
    video = streams["video"]
    shown = float(video["duration"]) - float(video.get("start_time", 0))  # tfdt: the segment's start
    assert shown == pytest.approx(1.0, abs=0.05), video


def test_blocking_reload_answers_when_the_hinted_part_is_written(server) -> None:
    client, base, _, _ = server
    msn, part = _hint(client.get(f"{base}/playlist.m3u8").text)
    t0 = time.monotonic()
    r = client.get(f"{base}/playlist.m3u8", params={"_HLS_msn": msn, "_HLS_part": part})
    waited = time.monotonic() - t0
    assert r.status_code == 200
    assert f'URI="part_{msn}_{part}.m4s"' in r.text or (part > 0 and f"seg_{msn}.m4s" in r.text)
    assert "max-age" in r.headers["cache-control"]
    assert waited < PART_S + 0.3, f"held {waited:.3f} s for a part due within {PART_S} s"
    # already available (a complete earlier segment): answered at once
    t0 = time.monotonic()
    assert client.get(f"{base}/playlist.m3u8", params={"_HLS_msn": msn - 1}).status_code == 200
    assert time.monotonic() - t0 < 0.2


def test_blocking_reload_rejects_far_future_and_malformed_and_times_out(server) -> None:
    client, base, _, _ = server
    msn, _ = _hint(client.get(f"{base}/playlist.m3u8").text)
    for params in ({"_HLS_msn": msn + 3}, {"_HLS_msn": "x1"}, {"_HLS_part": 0}, {"_HLS_msn": "-1"}):
        assert client.get(f"{base}/playlist.m3u8", params=params).status_code == 400, params
    # two segments ahead is allowed, but its last part is ≥ 1.8 s away: held, then 503
    t0 = time.monotonic()
    r = client.get(f"{base}/playlist.m3u8", params={"_HLS_msn": msn + 2, "_HLS_part": 4})
    assert r.status_code == 503 and time.monotonic() - t0 >= BLOCK_TIMEOUT_S - 0.05


def test_preload_hinted_part_is_held_until_complete(server) -> None:
    client, base, _, _ = server
    msn, part = _hint(client.get(f"{base}/playlist.m3u8").text)
    r = client.get(f"{base}/part_{msn}_{part}.m4s")
    assert r.status_code == 200 and r.content[4:8] == b"moof"
    assert client.get(f"{base}/part_{msn}_{part}.m4s").content == r.content  # immutable
    assert client.get(f"{base}/part_{msn + 1}_3.m4s").status_code == 404  # not hinted: not held


@pytest.mark.parametrize("name", ["part_1_0.m4s.x", "seg_1.ts", "init.mp4x", "seg_01a.m4s", "..%2Finit.mp4"])
def test_only_strict_names_are_served(server, name: str) -> None:
    client, base, _, _ = server
    assert client.get(f"{base}/{name}").status_code == 404


async def test_many_waiters_share_one_render_per_change(server) -> None:
    client, base, app, sid = server
    live = app.state.registry.get(sid).sink.llhls_live
    msn, part = _hint(client.get(f"{base}/playlist.m3u8").text)
    before = live.renders
    async with httpx.AsyncClient(base_url=str(client.base_url), timeout=10) as aclient:
        params = {"_HLS_msn": msn, "_HLS_part": part}
        answers = await asyncio.gather(
            *(aclient.get(f"{base}/playlist.m3u8", params=params) for _ in range(10))
        )
    assert all(a.status_code == 200 for a in answers)
    assert len({a.text for a in answers}) <= 2
    assert live.renders - before <= 3, "rendered per viewer instead of per change"


def test_recording_input_is_init_then_finished_segments(server, tmp_path: Path, probe) -> None:
    _, _, app, sid = server
    paths = app.state.registry.get(sid).sink.segment_paths
    assert paths[0].name == "init.mp4" and len(paths) >= 3
    assert [p.name for p in paths[1:]] == [f"seg_{n}.m4s" for n in range(1, len(paths))]
    out = remux_hls_to_mp4(paths, tmp_path / "recording.mp4")
    info = probe(out)
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    assert float(video["duration"]) == pytest.approx(len(paths) - 1, abs=0.1)
    assert any(s["codec_type"] == "audio" for s in info["streams"])


def test_blocking_query_parsing() -> None:
    assert blocking_query({}) == (None, None)
    assert blocking_query({"_HLS_msn": "7", "_HLS_part": "2"}) == (7, 2)
    for bad in ({"_HLS_part": "1"}, {"_HLS_msn": "1e3"}, {"_HLS_msn": "1", "_HLS_skip": "YES"}):
        with pytest.raises(BadBlockingRequestError):
            blocking_query(bad)


def test_a_player_without_ll_support_reads_the_playlist_as_plain_hls(server, ffprobe: str) -> None:
    """ffprobe's HLS demuxer knows no EXT-X-PART: it must still find both streams via the segments."""
    client, base, _, _ = server
    out = subprocess.run(
        [ffprobe, "-v", "error", "-show_entries", "stream=codec_type,codec_name", "-of", "csv=p=0",
         f"{client.base_url}{base}/playlist.m3u8"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert set(out.stdout.split()) == {"aac,audio", "h264,video"}  # listed per program too
