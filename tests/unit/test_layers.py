"""The import direction of the tree, enforced: ``models`` ← ``hls`` ← ``server``, and inside
``server`` the flow order ``app/cli → api → assembly → metrics → session → compute → sinks``
(then ``session.audio``, pure decoding that session and compute share),
with ``errors``/``settings``/``logs`` as leaves that import only ``models`` and ``hls``. Also: no
import cycles between modules (top-level imports; function-local imports are how a module
breaks a cycle on purpose, so they count for direction but not for cycles)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("models", "hls", "server", "facestream")

# rank of each server part: a module may import parts of a higher rank (later in the flow) only
SERVER_RANKS = {
    "app": 0,
    "cli": 0,
    "api": 1,
    "assembly": 2,
    "drain": 2,
    "metrics": 3,
    "session": 4,
    "compute": 5,
    "sinks": 6,
    "session.audio": 7,
}
SERVER_LEAVES = {"errors", "settings", "logs", "memory", "__init__"}
TOP_RANKS = {"facestream": 0, "server": 1, "hls": 2, "models": 3}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _import_nodes(tree: ast.AST, top_level_only: bool) -> list[ast.AST]:
    """Import statements; with ``top_level_only``, not those inside a function body."""
    found: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.append(child)
            elif not (top_level_only and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)):
                todo.append(child)
    return found


def _imports(path: Path, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = set()
    for node in _import_nodes(tree, top_level_only):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in out if m.split(".")[0] in PACKAGES}


def _server_part(module: str) -> str:
    if module.startswith("server.session.audio"):
        return "session.audio"  # pure decode/resample/buffers: used by session and compute alike
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _violation(src: str, dst: str) -> str | None:
    a, b = src.split(".")[0], dst.split(".")[0]
    if TOP_RANKS[a] > TOP_RANKS[b]:
        return f"{src} → {dst}: {a} must not import {b}"
    if a != "server" or b != "server":
        return None
    pa, pb = _server_part(src), _server_part(dst)
    if pa == pb:
        return None
    if pa in SERVER_LEAVES:
        return f"{src} → {dst}: server.{pa} is a leaf (imports only models/ and hls/)"
    if pb in SERVER_LEAVES:
        return None
    for part in (pa, pb):
        if part not in SERVER_RANKS:
            return f"server.{part} has no place in the flow: add it to SERVER_RANKS in this test"
    if SERVER_RANKS[pa] > SERVER_RANKS[pb]:
        return f"{src} → {dst}: server.{pa} comes after server.{pb} in the flow"
    return None


def test_imports_follow_the_flow() -> None:
    modules = _modules()
    problems = []
    for name, path in sorted(modules.items()):
        for dst in sorted(_imports(path, top_level_only=False)):
            target = dst if dst in modules else dst.rsplit(".", 1)[0]
            if target in modules and (why := _violation(name, target)):
                problems.append(why)
    assert not problems, "\n".join(sorted(set(problems)))


def test_no_import_cycles() -> None:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        deps = set()
        for dst in _imports(path, top_level_only=True):
            target = dst if dst in modules else dst.rsplit(".", 1)[0]
            if target in modules and target != name and not name.startswith(target + "."):
                deps.add(target)
        graph[name] = deps
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep) :], dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(" → ".join(c) for c in cycles[:10])
