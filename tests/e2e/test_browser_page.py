"""The browser side against a real server on loopback: the JS client's own tests (node's test
runner) and the page in real headless Chromium (Playwright). Skipped with a reason when node,
playwright-core or Chromium is missing, except under CI=true, where that is a failure."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.support.browser import browser_tools_missing, run_node, running_server

pytestmark = [pytest.mark.browser]


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    missing = browser_tools_missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests cannot run under CI=true: {missing}")
        pytest.skip(missing)
    with running_server() as url:
        yield url


def _node_test(path: str, url: str, timeout_s: float) -> None:
    result = run_node(["--test", "--test-reporter=spec", path], {"FACESTREAM_TEST_URL": url}, timeout_s)
    output = f"{result.stdout[-8000:]}\n{result.stderr[-4000:]}"
    assert result.returncode == 0, f"node --test {path} failed:\n{output}"


def test_js_units() -> None:
    """The page's pure pieces (PCM helpers, real-time scheduler, worklet resampler) in node."""
    if shutil.which("node") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is missing under CI=true")
        pytest.skip("node is not installed")
    result = run_node(["--test", "tests/e2e/browser/units.test.mjs"], {}, 60)
    assert result.returncode == 0, f"{result.stdout[-8000:]}\n{result.stderr[-4000:]}"


@pytest.mark.slow
def test_js_client_against_server(server_url: str) -> None:
    _node_test("tests/e2e/browser/client.test.mjs", server_url, 120)


@pytest.mark.slow
def test_page_in_headless_chromium(server_url: str) -> None:
    _node_test("tests/e2e/browser/page.test.mjs", server_url, 180)
