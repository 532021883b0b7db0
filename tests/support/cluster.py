"""A real cluster on loopback: N ``facestream serve`` processes behind a real HAProxy running the
shipped deploy/haproxy/haproxy.cfg (only its two ``# nodes`` blocks are swapped for loopback
servers), for the cluster e2e test and benchmarks/balancer.py.

Why the shipped file and not a test config: the routing (affinity by node tag, placement by
/ready, JSON answers instead of HAProxy's HTML pages) lives in that file; testing a copy would let
it rot.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.browser import free_port

ROOT = Path(__file__).resolve().parents[2]
HAPROXY_DIR = ROOT / "deploy" / "haproxy"
HAPROXY = os.environ.get("FACESTREAM_HAPROXY", "haproxy")
_NODES_BLOCK = re.compile(r"(    # nodes\n)(.*?)(    # end nodes\n)", re.S)


def haproxy_missing() -> str | None:
    """Why the cluster tests cannot run here, or None when an HAProxy ≥ 2.4 is installed."""
    exe = shutil.which(HAPROXY)
    if exe is None:
        return f"{HAPROXY} is not installed: run scripts/setup-haproxy.sh (apt-get install haproxy)"
    out = subprocess.run([exe, "-v"], capture_output=True, text=True, timeout=10).stdout
    version = re.search(r"version (\d+)\.(\d+)", out)
    if version is None or (int(version.group(1)), int(version.group(2))) < (2, 4):
        return f"HAProxy >= 2.4 is needed (dynamic use-server, http-request return), found: {out[:80]!r}"
    return None


def cluster_config(servers: Sequence[tuple[str, int]]) -> str:
    """The shipped haproxy.cfg with each ``# nodes`` block listing ``servers`` (name, port) on loopback."""
    text = (HAPROXY_DIR / "haproxy.cfg").read_text()
    lines = "".join(f"    server {name} 127.0.0.1:{port}\n" for name, port in servers)
    config, count = _NODES_BLOCK.subn(lambda m: m.group(1) + lines + m.group(3), text)
    assert count == 2, "deploy/haproxy/haproxy.cfg must have two '# nodes' … '# end nodes' blocks"
    return config


@dataclass
class Node:
    name: str
    port: int
    proc: subprocess.Popen
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: the node vanishes mid-stream, as a crashed machine's process would."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_node(name: str, workdir: Path, args: Sequence[str] = (), env: dict[str, str] | None = None) -> Node:
    """``facestream serve --node-id NAME`` on a free loopback port (not waited for: see wait_healthy)."""
    port = free_port()
    log_path = workdir / f"{name}.log"
    full_env = {
        **os.environ,
        "FACESTREAM_STORAGE_DIR": str(workdir / name),
        "FACESTREAM_RATE_LIMIT_PER_S": "0",  # every request comes from HAProxy on 127.0.0.1: it limits
        **(env or {}),
    }
    cmd = [
        sys.executable, "-m", "server.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
        "--node-id", name, "--no-warm-up", *args,
    ]  # fmt: skip
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    return Node(name, port, proc, log_path)


def wait_healthy(node: Node, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if node.proc.poll() is not None:
            raise RuntimeError(f"node {node.name} exited with {node.proc.returncode}:\n{node.log()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{node.url}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"node {node.name} not healthy in {timeout_s} s:\n{node.log()[-3000:]}")


def runtime_api(socket_path: Path, command: str, timeout_s: float = 5.0) -> str:
    """One command on HAProxy's runtime API (the stats socket); returns its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        s.connect(str(socket_path))
        s.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def server_states(socket_path: Path) -> dict[tuple[str, str], str]:
    """(backend, server) → HAProxy's status (``UP``, ``DOWN``, ``MAINT``, ``UP 1/2`` …)."""
    csv = runtime_api(socket_path, "show stat").splitlines()
    header = csv[0].lstrip("# ").split(",")
    pxname, svname, status = header.index("pxname"), header.index("svname"), header.index("status")
    states = {}
    for row in csv[1:]:
        cells = row.split(",")
        if len(cells) > status and cells[svname] not in ("FRONTEND", "BACKEND"):
            states[(cells[pxname], cells[svname])] = cells[status]
    return states


@dataclass
class Cluster:
    url: str
    nodes: dict[str, Node]
    admin_socket: Path
    workdir: Path
    haproxy: subprocess.Popen

    def wait_states(self, want: dict[tuple[str, str], str], timeout_s: float = 10.0) -> dict:
        """Until every (backend, server) listed has that status (prefix match: ``UP`` ≈ ``UP 1/2``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            states = server_states(self.admin_socket)
            if all(states.get(k, "").startswith(v) for k, v in want.items()):
                return states
            if time.monotonic() > deadline:
                raise AssertionError(f"HAProxy states {states} never matched {want}")
            time.sleep(0.1)

    def haproxy_log(self) -> str:
        return (self.workdir / "haproxy.log").read_text(errors="replace")


@contextlib.contextmanager
def running_cluster(names: Sequence[str], node_args: Sequence[str] = ()) -> Iterator[Cluster]:
    """Start the nodes (in parallel) and HAProxy; yields once HAProxy sees every node UP."""
    with tempfile.TemporaryDirectory(prefix="facestream-cluster-") as tmp:
        workdir = Path(tmp)
        nodes = {name: start_node(name, workdir, node_args) for name in names}
        haproxy = None
        try:
            for node in nodes.values():
                wait_healthy(node)
            (workdir / "lb").mkdir()
            shutil.copytree(HAPROXY_DIR / "errors", workdir / "lb" / "errors")
            cfg = workdir / "lb" / "haproxy.cfg"
            cfg.write_text(cluster_config([(n.name, n.port) for n in nodes.values()]))
            lb_port, admin = free_port(), workdir / "lb" / "admin.sock"
            env = {
                **os.environ,
                "FACESTREAM_LB_BIND": f"127.0.0.1:{lb_port}",
                "FACESTREAM_LB_ADMIN": str(admin),
            }
            with (workdir / "haproxy.log").open("wb") as log:
                haproxy = subprocess.Popen(
                    [HAPROXY, "-db", "-f", str(cfg)], env=env, stdout=log, stderr=subprocess.STDOUT
                )
            cluster = Cluster(f"http://127.0.0.1:{lb_port}", nodes, admin, workdir, haproxy)
            deadline = time.monotonic() + 15
            while not admin.exists():
                if haproxy.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"haproxy did not start:\n{cluster.haproxy_log()[-3000:]}")
                time.sleep(0.05)
            up = {(b, n): "UP" for n in names for b in ("new_sessions", "sessions")}
            cluster.wait_states(up, timeout_s=15)
            yield cluster
        finally:
            if haproxy is not None and haproxy.poll() is None:
                haproxy.terminate()
                haproxy.wait(10)
            for node in nodes.values():
                node.stop()
