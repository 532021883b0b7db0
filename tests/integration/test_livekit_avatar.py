"""FacestreamVideoGenerator under LiveKit's AvatarRunner, fed by the SDK's DataStreamAudioReceiver.

Runs in .venv-agent (tests/support/agent.py) from tests/integration/agent_probes/livekit_probe.py,
with a fake room in place of a LiveKit server (none installs here): the agent's PCM arrives as
``lk.audio_stream`` byte-stream segments, the barge-in as the ``lk.clear_buffer`` RPC, and the
avatar's ``lk.playback_started`` / ``lk.playback_finished`` calls are recorded. The AVSynchronizer
and the audio/video sources are LiveKit's real native ones; what the runner pushes into them is
checked like the Pipecat output (tests/integration/avatar_checks.py) plus the protocol.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.integration import avatar_checks as checks
from tests.support.agent import run_probe


@pytest.fixture(scope="module")
def livekit_run() -> dict:
    return run_probe("tests.integration.agent_probes.livekit_probe")


@pytest.mark.slow
def test_generator_frames_match_audio_and_mouth_follows_it(livekit_run):
    a = checks.check_frame_count(livekit_run)
    r = checks.check_mouth_follows_audio(livekit_run, a)
    # What is checked here is the hand-off to the AVSynchronizer, which times audio and video from
    # its own clock: every speech image is pushed right after the 40 ms of audio of its own tick
    # (same pts, by the probe's pairing), and the push of that audio may wait for room in the
    # AudioSource's 100 ms queue, so the hand-off times may differ by that queue plus a frame.
    checks.check_av_alignment(livekit_run, tolerance_s=0.1 + 2 * checks.FRAME_S)
    checks.check_idle_flow(livekit_run)
    print(f"A: {len(a)} speech frames, r={r:.3f}")


@pytest.mark.slow
def test_clear_buffer_goes_idle_within_100ms(livekit_run):
    assert livekit_run["clear_answer"] == "ok"
    media, wall = checks.check_interruption(livekit_run)
    print(f"idle {media * 1000:.0f} ms of stream ({wall * 1000:.0f} ms wall) after lk.clear_buffer")


@pytest.mark.slow
def test_avatar_protocol_rpcs(livekit_run):
    """lk.clear_buffer is served; the avatar publishes audio + video; playback_started once per
    segment; playback_finished when segment A's last frame has been pushed (not interrupted, its
    whole duration) and right after the clear for B (interrupted, the part that was shown)."""
    run = livekit_run
    assert "lk.clear_buffer" in run["rpc_registered"]
    assert sorted(run["published"]) == ["LocalAudioTrack", "LocalVideoTrack"]
    calls = run["rpc_calls"]
    assert [c["method"] for c in calls] == [
        "lk.playback_started",
        "lk.playback_finished",
        "lk.playback_started",
        "lk.playback_finished",
    ], calls
    assert all(c["to"] == "agent" for c in calls)
    a, b = checks.speech_segments(run["images"])[:2]

    done_a = json.loads(calls[1]["payload"])
    assert done_a["interrupted"] is False
    assert abs(done_a["playback_position"] - run["a_seconds"]) <= checks.FRAME_S + 1e-6
    assert a[-1]["t"] <= calls[1]["t"] <= a[-1]["t"] + 0.2, "playback_finished must follow A's last frame"
    assert calls[0]["t"] <= a[0]["t"] + 0.2

    done_b = json.loads(calls[3]["payload"])
    assert done_b["interrupted"] is True
    assert abs(done_b["playback_position"] - len(b) * checks.FRAME_S) <= 2 * checks.FRAME_S + 1e-6
    assert 0 <= calls[3]["t"] - run["interrupt_sent"] <= 0.2


@pytest.mark.slow
def test_streamed_audio_to_synchronizer_latency(livekit_run):
    lat = checks.streamed_latencies(livekit_run)
    p50, p90 = np.percentile(lat, [50, 90])
    print(f"lk.audio_stream chunk in -> AVSynchronizer: p50 {p50 * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms")
    assert p50 <= 0.35, f"p50 {p50 * 1000:.0f} ms"
