"""Pure parts of running several nodes: node-tagged session ids, the drain's rules and task, HLS
cache validators, and the node label on every metric sample."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from server.api.http_cache import etag_of, matches
from server.drain import Drain, drain_finished
from server.errors import SessionNotFoundError
from server.metrics import ServerMetrics
from server.session.ids import is_valid_session_id, new_session_id, node_of
from server.settings import Settings

HEX = "0123456789abcdef0123456789abcdef"


def test_node_tagged_ids_are_valid_and_name_their_node() -> None:
    sid = new_session_id("node_7")
    assert sid.startswith("node_7-") and len(sid) == len("node_7-") + 32
    assert is_valid_session_id(sid) and node_of(sid) == "node_7"
    plain = new_session_id()
    assert is_valid_session_id(plain) and len(plain) == 32 and node_of(plain) is None
    assert new_session_id("n1") != new_session_id("n1")


@pytest.mark.parametrize(
    "bad",
    [
        f"N1-{HEX}",  # upper case
        f"n-1-{HEX}",  # a dash inside the tag
        f"-{HEX}",  # empty tag
        f"../{HEX}",
        f"{'a' * 33}-{HEX}",  # tag longer than 32
        f"n1-{HEX[:-1]}",
        f"n1-{HEX}/x",
        f"n1-{HEX}\x00",
        f"n1_{HEX}",
    ],
)
def test_malformed_ids_are_refused_before_any_use(bad: str) -> None:
    assert not is_valid_session_id(bad)
    with pytest.raises(SessionNotFoundError):
        node_of(bad)


def test_new_session_id_refuses_a_bad_node_id() -> None:
    with pytest.raises(ValueError):
        new_session_id("a/b")


@pytest.mark.parametrize("node", ["N1", "a-b", "a b", "x" * 33, "../x"])
def test_settings_refuse_node_ids_that_are_not_haproxy_names(node: str, tmp_path) -> None:
    with pytest.raises(ValidationError):
        Settings(node_id=node, storage_dir=tmp_path)


def test_settings_accept_node_ids(tmp_path) -> None:
    assert Settings(node_id="edge_3", storage_dir=tmp_path).node_id == "edge_3"
    assert Settings(storage_dir=tmp_path).node_id == ""


def test_drain_finishes_when_nothing_is_live_or_at_the_deadline() -> None:
    assert drain_finished(0, now=1.0, deadline=10.0)
    assert not drain_finished(2, now=1.0, deadline=10.0)
    assert drain_finished(2, now=10.0, deadline=10.0)


class _Registry:
    def __init__(self, live: int) -> None:
        self.live = live
        self.draining = False

    def live_count(self) -> int:
        return self.live


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_drain_refuses_new_work_and_leaves_when_the_last_session_ends() -> None:
    async def scenario() -> tuple[list[str], bool, bool]:
        registry, calls = _Registry(live=2), []
        drain = Drain(registry, lambda: calls.append("exit"), clock=_Clock(), poll_s=0.01)
        status = drain.start(60)
        assert registry.draining and drain.draining and status.live_sessions == 2
        await asyncio.sleep(0.05)
        still_waiting = not drain.finished.is_set()
        registry.live = 0
        await asyncio.wait_for(drain.finished.wait(), 2)
        await drain.close()
        return calls, still_waiting, registry.draining

    calls, still_waiting, draining = asyncio.run(scenario())
    assert still_waiting and calls == ["exit"] and draining


def test_drain_deadline_only_comes_closer_and_ends_with_sessions_live() -> None:
    async def scenario() -> tuple[float | None, float | None, bool]:
        clock, registry = _Clock(), _Registry(live=1)
        drain = Drain(registry, None, clock=clock, poll_s=0.01)
        drain.start(60)
        longer = drain.start(600).seconds_left  # a later, longer deadline is ignored
        shorter = drain.start(5).seconds_left
        clock.now += 5
        await asyncio.wait_for(drain.finished.wait(), 2)
        await drain.close()
        return longer, shorter, registry.live == 1

    longer, shorter, live = asyncio.run(scenario())
    assert longer == pytest.approx(60) and shorter == pytest.approx(5) and live


def test_etags_and_if_none_match() -> None:
    tag = etag_of(b"#EXTM3U\n")
    assert tag == etag_of(b"#EXTM3U\n") != etag_of(b"#EXTM3U\n#EXT-X-ENDLIST\n")
    assert tag.startswith('"') and tag.endswith('"')
    assert matches(tag, tag) and matches(f'"x", W/{tag}', tag) and matches("*", tag)
    assert not matches(None, tag) and not matches('"other"', tag)


def test_every_metric_sample_carries_the_node_label() -> None:
    labelled = ServerMetrics(node="n1")
    labelled.request_errors.labels("/x", "404").inc()
    labelled.observe_lateness(0.01)
    samples = [
        line for line in labelled.exposition()[0].decode().splitlines() if line and not line.startswith("#")
    ]
    assert samples and all('node="n1"' in line for line in samples), samples
    plain = ServerMetrics()
    plain.observe_lateness(0.01)
    assert "node=" not in plain.exposition()[0].decode()
