"""No ``getattr``/``hasattr`` probing in ``server/``: what a session, sink or engine stream can do
is said by a protocol (``SessionLike``, ``hls.base.TickSink``, ``Rewindable``, ``PreparesBytes``)
and checked with ``isinstance``; wrappers forward explicitly. The few remaining uses read objects
whose attributes are dynamic by design, each named here with the reason."""

from __future__ import annotations

import ast
from pathlib import Path

SERVER = Path(__file__).resolve().parents[3] / "server"

ALLOWED = {
    # logging.LogRecord carries `extra=` fields as dynamic attributes; that is the logging API
    ("logs.py", "session_id"),
    # a marker attribute on the aioice function we replace, so installing twice is a no-op
    ("sinks/webrtc/loopback.py", "facestream_loopback"),
}


def _probes() -> list[tuple[str, int, str]]:
    found = []
    for path in sorted(SERVER.rglob("*.py")):
        rel = path.relative_to(SERVER).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "hasattr")
            ):
                arg = node.args[1] if len(node.args) > 1 else None
                name = arg.value if isinstance(arg, ast.Constant) else "?"
                if (rel, name) not in ALLOWED:
                    found.append((rel, node.lineno, f"{node.func.id}(…, {name!r})"))
    return found


def test_server_code_does_not_probe_attributes() -> None:
    probes = _probes()
    assert not probes, "use a Protocol + isinstance, or a typed attribute:\n" + "\n".join(
        f"server/{f}:{line}: {what}" for f, line, what in probes
    )


def test_no_wrapper_forwards_through_getattr() -> None:
    offenders = [
        path.relative_to(SERVER).as_posix()
        for path in SERVER.rglob("*.py")
        if "def __getattr__(" in path.read_text()
    ]
    assert not offenders, f"forward explicitly (see hls.base.SinkWrapper): {offenders}"
