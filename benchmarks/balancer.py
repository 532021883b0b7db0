"""What the balancer costs: requests and stream start through HAProxy vs straight to the node.

Starts a real cluster on loopback (``tests.support.cluster``: the shipped deploy/haproxy/haproxy.cfg,
``--nodes`` ``facestream serve`` processes on the CPU engine) and measures, interleaving balancer
and direct calls so that machine load hits both alike:

* added latency per request, p50/p99: ``GET …/status/<id>`` (routed by the id in the path) and
  ``POST …/feed?session_id=<id>`` with a 0.2 s raw-PCM chunk (routed by the query parameter);
* init → first segment: from sending ``init`` to the first playlist that lists a segment, through
  the balancer (init placed by /ready, playlist routed by the node tag) vs direct to a node.

    python -m benchmarks.balancer [--nodes 2] [--requests 300] [--starts 4]

Keep ``--requests`` ≤ ~500: HAProxy's per-client limit (1200 requests / 10 s) applies to this
benchmark too. Run it on an otherwise idle machine; the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import time

import httpx
import numpy as np

from benchmarks.server_common import API, face_bytes, percentiles, speech_pcm16
from server.session.ids import node_of
from tests.support.cluster import Cluster, haproxy_missing, running_cluster
from tests.support.processes import segment_numbers


def _init(client: httpx.Client, face: bytes) -> str:
    r = client.post(f"{API}/init", files={"image": ("face.jpg", face, "image/jpeg")})
    r.raise_for_status()
    return r.json()["session_id"]


def _ms(fn) -> float:
    t0 = time.perf_counter()
    r = fn()
    elapsed = (time.perf_counter() - t0) * 1000
    if r.status_code != 200:
        raise RuntimeError(f"HTTP {r.status_code}: {r.text[:200]}")
    return elapsed


def request_latency(cluster: Cluster, requests: int) -> dict[str, dict[str, list[float]]]:
    face, chunk = face_bytes(), speech_pcm16(24000)[: int(0.2 * 24000)].tobytes()
    out: dict[str, dict[str, list[float]]] = {
        "status": {"lb": [], "direct": []},
        "feed": {"lb": [], "direct": []},
    }
    with httpx.Client(base_url=cluster.url, timeout=30) as lb:
        sid = _init(lb, face)
        owner = cluster.nodes[node_of(sid)]
        with httpx.Client(base_url=owner.url, timeout=30) as direct:
            for client in (lb, direct):  # warm both connections
                client.get(f"{API}/status/{sid}")
            for i in range(requests):
                for name, client in (
                    (("lb", lb), ("direct", direct)) if i % 2 else (("direct", direct), ("lb", lb))
                ):
                    out["status"][name].append(_ms(lambda c=client: c.get(f"{API}/status/{sid}")))
                    if i % 3 == 0:  # fewer feeds: each queues 0.2 s of speech
                        out["feed"][name].append(
                            _ms(
                                lambda c=client: c.post(
                                    f"{API}/feed",
                                    params={"session_id": sid},
                                    data={"session_id": sid},
                                    files={"audio_chunk": ("c", chunk)},
                                )
                            )
                        )
        lb.delete(f"{API}/session/{sid}")
    return out


def _first_segment_s(client: httpx.Client, face: bytes) -> tuple[float, str]:
    t0 = time.perf_counter()
    sid = _init(client, face)
    while True:
        r = client.get(f"/hls/{sid}/playlist.m3u8")
        if r.status_code == 200 and segment_numbers(r.text):
            elapsed = time.perf_counter() - t0
            client.delete(f"{API}/session/{sid}")
            return elapsed, sid
        if time.perf_counter() - t0 > 30:
            raise RuntimeError("no segment within 30 s")
        time.sleep(0.02)


def first_segment(cluster: Cluster, starts: int) -> dict[str, list[float]]:
    face = face_bytes()
    node = next(iter(cluster.nodes.values()))
    out: dict[str, list[float]] = {"lb": [], "direct": []}
    with (
        httpx.Client(base_url=cluster.url, timeout=30) as lb,
        httpx.Client(base_url=node.url, timeout=30) as direct,
    ):
        _first_segment_s(direct, face)  # the node's first init loads the face models: not measured
        for n in cluster.nodes.values():
            with httpx.Client(base_url=n.url, timeout=30) as warm:
                _init_and_delete(warm, face)
        for i in range(starts):
            for name, client in (
                (("lb", lb), ("direct", direct)) if i % 2 else (("direct", direct), ("lb", lb))
            ):
                out[name].append(_first_segment_s(client, face)[0])
    return out


def _init_and_delete(client: httpx.Client, face: bytes) -> None:
    client.delete(f"{API}/session/{_init(client, face)}")


def _row(label: str, lb: list[float], direct: list[float], unit: str) -> str:
    a, b = percentiles(lb), percentiles(direct)
    return (
        f"{label:<26} balancer p50 {a['p50']:7.2f} p99 {a['p99']:7.2f} | direct p50 {b['p50']:7.2f} "
        f"p99 {b['p99']:7.2f} | added p50 {a['p50'] - b['p50']:+6.2f} p99 {a['p99'] - b['p99']:+6.2f} {unit}"
        f"  (n={len(lb)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--starts", type=int, default=4)
    args = parser.parse_args()
    missing = haproxy_missing()
    if missing:
        raise SystemExit(missing)
    names = [f"n{i + 1}" for i in range(args.nodes)]
    print(f"load average before: {os.getloadavg()}")
    with running_cluster(names, ["--max-sessions", "4"]) as cluster:
        lat = request_latency(cluster, args.requests)
        starts = first_segment(cluster, args.starts)
    print(f"{args.nodes} nodes, HAProxy on loopback, CPU engine; load average after: {os.getloadavg()}")
    print(_row("GET status (path id)", lat["status"]["lb"], lat["status"]["direct"], "ms"))
    print(_row("POST feed (?session_id)", lat["feed"]["lb"], lat["feed"]["direct"], "ms"))
    ms = {k: list(np.asarray(v) * 1000) for k, v in starts.items()}
    print(_row("init → first segment", ms["lb"], ms["direct"], "ms"))


if __name__ == "__main__":
    main()
