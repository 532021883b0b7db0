"""The static page ships without a build step: pinned, vendored hls.js and imports that resolve."""

from __future__ import annotations

import json
import re

import pytest

from tests.support.browser import ROOT

STATIC = ROOT / "static"


def test_npm_pins_are_exact_and_hls_js_is_vendored_from_them() -> None:
    package = json.loads((ROOT / "package.json").read_text())
    pins = package["devDependencies"]
    assert set(pins) >= {"hls.js", "playwright-core"}
    for name, version in pins.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name} must be pinned exactly, got {version}"
    lock = json.loads((ROOT / "package-lock.json").read_text())
    for name, version in pins.items():
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
    vendored = (STATIC / "vendor" / "hls.min.js").read_bytes()
    assert len(vendored) > 300_000
    installed = ROOT / "node_modules" / "hls.js" / "dist" / "hls.min.js"
    if installed.exists():
        assert vendored == installed.read_bytes(), "static/vendor/hls.min.js differs: run `npm run vendor`"
    else:
        pytest.skip("node_modules not installed; vendored copy checked for size only")


def test_page_references_and_module_imports_resolve() -> None:
    html = (STATIC / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="([^":]+)"', html)
    assert "app.js" in refs and "vendor/hls.min.js" in refs
    for ref in refs:
        assert (STATIC / ref).is_file(), f"index.html refers to missing {ref}"
    for module in STATIC.glob("*.js"):
        text = module.read_text()
        for target in re.findall(r"""(?:from|import\()\s*['"](\.[^'"]+)['"]""", text):
            assert (module.parent / target).resolve().is_file(), f"{module.name} imports missing {target}"
        for target in re.findall(r"""new URL\(['"](\.[^'"]+)['"], import\.meta\.url\)""", text):
            assert (module.parent / target).resolve().is_file(), f"{module.name} loads missing {target}"
    assert (STATIC / "sample_face.jpg").read_bytes()[:2] == b"\xff\xd8"


def test_every_control_has_an_accessible_name() -> None:
    html = (STATIC / "index.html").read_text()
    for tag in re.findall(r"<(?:input|select|textarea)\b[^>]*>", html):
        control_id = re.search(r'id="([^"]+)"', tag)
        assert control_id, f"control without id: {tag}"
        assert f'for="{control_id.group(1)}"' in html or "aria-label" in tag, f"unlabelled control: {tag}"
