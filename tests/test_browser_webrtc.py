"""WebRTC playback in real headless Chromium against a real server on loopback: the page's WebRTC
mode (node test runner + Playwright) and a short glass-to-glass run of the benchmark's method
(frame barcodes read off what Chromium presents). Skipped with a reason when node,
playwright-core or Chromium is missing, except under CI=true, where that is a failure."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import browser_tools_missing, run_node, running_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    missing = browser_tools_missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests cannot run under CI=true: {missing}")
        pytest.skip(missing)
    with running_server({"FACESTREAM_DEBUG_BARCODE": "1"}) as url:
        yield url


def test_page_webrtc_mode(server_url: str) -> None:
    path = "tests/browser/rtc-page.test.mjs"
    result = run_node(["--test", "--test-reporter=spec", path], {"FACESTREAM_TEST_URL": server_url}, 120)
    assert result.returncode == 0, (
        f"node --test {path} failed:\n{result.stdout[-8000:]}\n{result.stderr[-4000:]}"
    )


def test_speech_reaches_chromium_over_webrtc_within_a_second(server_url: str) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from glass_to_glass_webrtc import measure

    summary = measure(server_url, seconds=3.0)
    assert summary["page_errors"] == []
    assert summary["frames_shown"] >= 60 and summary["unreadable_frames"] <= 2
    assert summary["speech_frames_matched"] >= 40  # barcodes of speech frames, read off Chromium's frames
    # the lead alone is 400 ms by default; a whole second means something queues
    assert 0.2 < summary["p50_s"] < 1.0 and not math.isnan(summary["p90_s"])
