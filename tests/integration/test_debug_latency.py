"""The latency debug mode: stamped frames come out of a real HLS sink with their indices readable,
hand-off times are recorded, and the debug routes serve them."""

from __future__ import annotations

import subprocess
import time

import cv2
import numpy as np
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hls.barcode import read_barcode
from hls.sink import HlsSink
from models.types import AudioSlice, VideoFrame
from server.api import debug as debug_routes
from server.errors import install_error_handlers
from server.sinks.debug import BarcodeStampingSink, FrameHandoffLog, FrameLogs, IngestLog


def test_stamping_sink_writes_readable_indices_and_records_handoffs(
    tmp_path, ffmpeg, sample_face_path
) -> None:
    face = cv2.cvtColor(cv2.resize(cv2.imread(str(sample_face_path)), (256, 256)), cv2.COLOR_BGR2RGB)
    log = FrameHandoffLog()
    ticks = 50
    with HlsSink(tmp_path, 256, 256, sample_rate=16000) as inner:
        sink = BarcodeStampingSink(inner, log)
        for n in range(ticks):
            sink.write(VideoFrame(n, np.roll(face, n, axis=1)), AudioSlice(n, np.zeros(640, np.int16), 16000))
        sink.end()
        paths = sink.segment_paths  # delegated to the wrapped sink
    assert paths, "the wrapped sink published segments"
    concat = "concat:" + "|".join(str(p) for p in paths)
    raw = subprocess.run(
        [ffmpeg, "-v", "error", "-i", concat, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, 256, 256, 3)
    assert [read_barcode(f) for f in frames] == list(range(ticks))
    pairs = log.pairs()
    assert [i for i, _ in pairs] == list(range(ticks))
    times = [t for _, t in pairs]
    assert times == sorted(times) and abs(times[-1] - time.time()) < 60


def test_log_is_bounded() -> None:
    log = FrameHandoffLog(max_records=3)
    for i in range(5):
        log.record(i, float(i))
    assert log.pairs() == [(2, 2.0), (3, 3.0), (4, 4.0)]
    for n in range(12):  # every fill level and wrap position, oldest first
        log = FrameHandoffLog(max_records=4)
        for i in range(n):
            log.record(i, i / 2)
        assert log.pairs() == [(i, i / 2) for i in range(max(0, n - 4), n)]
    ingest = IngestLog(max_records=2)
    for i in range(7):
        ingest.record(100.0 + i, 320 * i)
    assert ingest.pairs() == [(105.0, 1600), (106.0, 1920)]


def test_debug_routes() -> None:
    app = FastAPI()
    install_error_handlers(app)
    app.state.frame_logs = logs = FrameLogs()
    app.include_router(debug_routes.router)
    session_id = "ab" * 16
    logs.open(session_id).record(7, 123.5)
    client = TestClient(app)
    before = time.time()
    clock = client.get("/api/debug/clock").json()["server_time"]
    assert before <= clock <= time.time()
    answer = client.get(f"/api/debug/sessions/{session_id}/frame-times").json()
    assert answer == {"session_id": session_id, "clock": "time.time", "frames": [[7, 123.5]]}
    assert client.get(f"/api/debug/sessions/{'cd' * 16}/frame-times").status_code == 404
    assert client.get("/api/debug/sessions/..%2Fx/frame-times").status_code == 404
    logs.close(session_id)
    assert client.get(f"/api/debug/sessions/{session_id}/frame-times").status_code == 404
