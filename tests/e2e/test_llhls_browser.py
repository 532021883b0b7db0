"""LL-HLS in the browser: the page's live-sync logic in node, and an LL session played by hls.js in
real headless Chromium against a real server (FACESTREAM_HLS_MODE=ll). Skipped with a reason when
node, playwright-core or Chromium is missing, except under CI=true, where that is a failure."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.support.browser import browser_tools_missing, run_node, running_server

pytestmark = [pytest.mark.browser]


def _require(missing: str | None) -> None:
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests cannot run under CI=true: {missing}")
        pytest.skip(missing)


def test_live_sync_rate_decisions() -> None:
    _require(None if shutil.which("node") else "node is not installed")
    result = run_node(["--test", "tests/e2e/browser/llhls-units.test.mjs"], {}, 60)
    assert result.returncode == 0, f"{result.stdout[-8000:]}\n{result.stderr[-4000:]}"


@pytest.mark.slow
def test_ll_session_plays_in_headless_chromium() -> None:
    _require(browser_tools_missing())
    with running_server({"FACESTREAM_HLS_MODE": "ll"}) as url:
        args = ["--test", "--test-reporter=spec", "tests/e2e/browser/llhls.test.mjs"]
        result = run_node(args, {"FACESTREAM_TEST_URL": url}, 120)
    assert result.returncode == 0, f"{result.stdout[-8000:]}\n{result.stderr[-4000:]}"
