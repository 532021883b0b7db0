#!/usr/bin/env python3
"""Python client for facestream's chunked streaming API (and a command line that streams a file).

    from chunked_streaming_client import ChunkedStreamingClient
    client = ChunkedStreamingClient("http://127.0.0.1:9999")
    info = client.init_session("face.jpg")           # the stream is live (idle) from here
    client.feed_audio_chunk(wav_or_pcm_bytes)         # as speech arrives
    client.feed_audio_chunk(last_bytes, is_final=True)
    print(client.get_status())
    client.cleanup()                                  # stop the session, remove its files

Command line (decodes any audio file, sends raw PCM s16le chunks at ``audio_sample_rate``):

    python chunked_streaming_client.py --image face.jpg --audio speech.wav [--realtime|--fast] [--chunk 0.5]
    python chunked_streaming_client.py --mode render --image face.jpg --audio speech.wav -o out.mp4
    python chunked_streaming_client.py --mode stream --image face.jpg --audio speech.wav [--wait]

``--realtime`` (default) sends one chunk per chunk-duration, one chunk ahead of playback, as a
live source would; ``--fast`` sends everything at once (the server queues it, bounded).
Errors from the server raise ``StreamingClientError`` with its message and HTTP status; a 429
(speech queue full) is retried after the server's ``Retry-After``, and so is a 503 on init (server
at capacity, node draining) for up to ``wait_for_capacity_s`` (30 s by default).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

API = "/api/audio-driven/chunked"
WHOLE_API = "/api/audio-driven"


def _fields(params: dict[str, Any]) -> dict[str, str]:
    """Engine parameters as the form fields the server parses (lists as JSON, bools lower case)."""
    out = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = str(value).lower()
        elif isinstance(value, list | tuple):
            out[key] = json.dumps(list(value))
        else:
            out[key] = str(value)
    return out


class StreamingClientError(RuntimeError):
    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.retry_after = retry_after


class ChunkedStreamingClient:
    def __init__(
        self, server_url: str = "http://127.0.0.1:9999", timeout: float = 60.0, api_key: str | None = None
    ) -> None:
        """``api_key``: the server's API key (default: env ``FACESTREAM_API_KEY``; none needed on a
        loopback server without keys). The session token from ``init`` is then used automatically."""
        self.server_url = server_url.rstrip("/")
        self._http = httpx.Client(base_url=self.server_url, timeout=timeout)
        self.api_key = api_key if api_key is not None else os.environ.get("FACESTREAM_API_KEY") or None
        self.session_token: str | None = None
        self.session_id: str | None = None
        self.hls_url: str | None = None
        self.audio_sample_rate = 24000

    # -- API -------------------------------------------------------------------------------------
    def init_session(
        self,
        image_path: str | Path,
        crop: bool = True,
        seed: int = 42,
        nfe: int = 10,
        cfg_scale: float = 2.0,
        chunk_duration: float = 1.0,
        audio_sample_rate: int = 24000,
        pose_style: list[float] | tuple[float, float, float] | None = None,
        gaze_style: list[float] | tuple[float, float] | None = None,
        wait_for_capacity_s: float = 30.0,
    ) -> dict[str, Any]:
        """Create a session from a face photo; returns the server's JSON (``session_id``, ``hls_url``…).

        A 503 with ``Retry-After`` (the server or balancer is full, or the node is draining) is
        retried after the advertised delay for up to ``wait_for_capacity_s`` seconds in all
        (never sooner than the server asked, except that the last wait is cut to what is left);
        0 = raise ``StreamingClientError`` at once."""
        fields = {
            "crop": str(bool(crop)).lower(),
            "seed": str(seed),
            "nfe": str(nfe),
            "cfg_scale": str(cfg_scale),
            "chunk_duration": str(chunk_duration),
            "audio_sample_rate": str(audio_sample_rate),
        }
        if pose_style is not None:
            fields["pose_style"] = json.dumps(list(pose_style))
        if gaze_style is not None:
            fields["gaze_style"] = json.dumps(list(gaze_style))
        path = Path(image_path)
        image = path.read_bytes()
        give_up = time.monotonic() + max(0.0, wait_for_capacity_s)
        while True:
            r = self._http.post(
                f"{API}/init",
                data=fields,
                files={"image": (path.name, image, "application/octet-stream")},
                headers=self._key_headers(),
            )
            retry = _retry_after(r) if r.status_code == 503 else None
            left = give_up - time.monotonic()
            if retry is None or left <= 0:
                break
            time.sleep(min(retry, left))
        info = self._json(r)
        self.session_id = info["session_id"]
        self.session_token = info.get("session_token")
        self.hls_url = self.server_url + info["hls_url"]
        self.audio_sample_rate = int(info.get("audio_sample_rate", audio_sample_rate))
        return info

    def feed_audio_chunk(
        self, audio_bytes: bytes, is_final: bool = False, retries: int = 20
    ) -> dict[str, Any]:
        """Send one chunk (WAV/MP3/FLAC/OGG bytes, or raw PCM s16le at the session's rate).

        A 429 (queue full) is retried after the server's Retry-After, up to ``retries`` times.
        """
        sid = self._require_session()
        for _ in range(retries + 1):
            r = self._http.post(
                f"{API}/feed",
                params={"session_id": sid},  # a balancer routes on it (README "Running more than one node")
                data={"session_id": sid, "is_final_chunk": "true" if is_final else "false"},
                files={"audio_chunk": ("chunk", audio_bytes, "application/octet-stream")},
                headers=self._session_headers(),
            )
            if r.status_code == 429:
                time.sleep(float(r.headers.get("Retry-After", "1")))
                continue
            return self._json(r)
        return self._json(r)

    def get_status(self) -> dict[str, Any]:
        sid = self._require_session()
        return self._json(self._http.get(f"{API}/status/{sid}", headers=self._session_headers()))

    # -- whole-audio endpoints -------------------------------------------------------------------
    def render(
        self, image_path: str | Path, audio_path: str | Path, out_path: str | Path, **params: Any
    ) -> Path:
        """``POST /api/audio-driven``: the whole audio file → an MP4 written to ``out_path``.

        ``params``: crop, seed, nfe, cfg_scale, pose_style, gaze_style (as for ``init_session``).
        """
        out = Path(out_path)
        with (
            self._whole_audio_files(image_path, audio_path) as files,
            self._http.stream(
                "POST", WHOLE_API, data=_fields(params), files=files, timeout=None,
                headers=self._key_headers(),
            ) as r,  # fmt: skip
        ):
            if r.status_code >= 400:
                r.read()
                self._json(r)
            tmp = out.with_name(f".{out.name}.part")
            with open(tmp, "wb") as f:
                for block in r.iter_bytes(1 << 20):
                    f.write(block)
            tmp.replace(out)
        return out

    def stream_file(self, image_path: str | Path, audio_path: str | Path, **params: Any) -> str:
        """``POST /api/audio-driven/stream``: returns the absolute HLS URL at once (the playlist grows
        while the clip renders and ends with ``#EXT-X-ENDLIST``). The session is this client's
        current one: ``get_status()`` / ``cleanup()`` / ``recording_url`` apply to it."""
        with self._whole_audio_files(image_path, audio_path) as files:
            r = self._http.post(
                f"{WHOLE_API}/stream", data=_fields(params), files=files, headers=self._key_headers()
            )
        info = self._json(r)
        self.session_id = info["session_id"]
        self.session_token = info.get("session_token")
        self.hls_url = self.server_url + info["hls_url"]
        return self.hls_url

    @property
    def recording_url(self) -> str:
        """The current session so far as one MP4 (chunked or progressive)."""
        return f"{self.server_url}{API}/session/{self._require_session()}/recording.mp4"

    @contextlib.contextmanager
    def _whole_audio_files(self, image_path: str | Path, audio_path: str | Path) -> Iterator[dict[str, Any]]:
        image, audio = Path(image_path), Path(audio_path)
        with open(image, "rb") as fi, open(audio, "rb") as fa:
            yield {
                "image": (image.name, fi, "application/octet-stream"),
                "audio": (audio.name, fa, "application/octet-stream"),
            }

    def cleanup(self) -> dict[str, Any] | None:
        """Delete the session (stops it and removes its files). Safe to call twice."""
        if self.session_id is None:
            return None
        try:
            return self._json(
                self._http.delete(f"{API}/session/{self.session_id}", headers=self._session_headers())
            )
        except StreamingClientError as e:
            if e.status != 404:
                raise
            return None
        finally:
            self.session_id = None
            self.session_token = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ChunkedStreamingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers ---------------------------------------------------------------------------------
    def _key_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _session_headers(self) -> dict[str, str]:
        """The session token for session routes (the API key only if init gave none)."""
        if self.session_token:
            return {"Authorization": f"Bearer {self.session_token}"}
        return self._key_headers()

    def _require_session(self) -> str:
        if self.session_id is None:
            raise RuntimeError("no session: call init_session() first")
        return self.session_id

    @staticmethod
    def _json(r: httpx.Response) -> dict[str, Any]:
        try:
            body = r.json()
        except ValueError:
            body = {"message": r.text[:200]}
        if r.status_code >= 400:
            retry = r.headers.get("Retry-After")
            raise StreamingClientError(
                r.status_code, body.get("message", str(body)), float(retry) if retry else None
            )
        return body


def _retry_after(r: httpx.Response) -> float | None:
    """The response's ``Retry-After`` in seconds (the delta form), None when absent or a date."""
    try:
        return max(0.0, float(r.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None


def pcm16_chunks(audio_path: Path, sample_rate: int, chunk_seconds: float) -> list[bytes]:
    """Decode any audio file (soundfile, else PyAV) to mono s16le at ``sample_rate`` in chunks."""
    import numpy as np

    try:
        import soundfile as sf

        pcm, rate = sf.read(str(audio_path), dtype="float32", always_2d=True)
        pcm = pcm.mean(axis=1)
    except Exception:
        import av

        with av.open(str(audio_path)) as c:
            res = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            parts = [f.to_ndarray().reshape(-1) for fr in c.decode(audio=0) for f in res.resample(fr)]
        pcm, rate = np.concatenate(parts), sample_rate
    if rate != sample_rate:
        import soxr

        pcm = soxr.resample(pcm, rate, sample_rate)
    data = (np.clip(pcm, -1, 1) * 32767).astype("<i2")
    step = max(1, round(chunk_seconds * sample_rate))
    return [data[i : i + step].tobytes() for i in range(0, len(data), step)]


def _progress(done: int, total: int, status: dict[str, Any]) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    bar = "#" * filled + "-" * (width - filled)
    queued = status.get("queued_speech_seconds", status.get("buffer_samples", 0))
    sys.stderr.write(
        f"\r[{bar}] {done}/{total} chunks  queued {queued} s  frames {status.get('frames_generated')}"
    )
    sys.stderr.flush()


def _whole_file_mode(args: argparse.Namespace) -> int:
    params = {"crop": not args.no_crop, "seed": args.seed}
    with ChunkedStreamingClient(args.server, timeout=600, api_key=args.api_key) as client:
        if args.mode == "render":
            started = time.monotonic()
            out = client.render(args.image, args.audio, args.out, **params)
            print(f"wrote {out} in {time.monotonic() - started:.1f} s", flush=True)
            return 0
        print(f"HLS: {client.stream_file(args.image, args.audio, **params)}", flush=True)
        print(f"recording: {client.recording_url}", flush=True)
        if args.wait:
            while (status := client.get_status())["status"] in ("streaming", "draining"):
                sys.stderr.write(f"\rrendered {status.get('progress', 0):.0%}")
                time.sleep(0.5)
            sys.stderr.write("\n")
            print(json.dumps(status, indent=2))
        if args.cleanup:
            client.cleanup()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Stream an audio file to a facestream session in chunks.")
    ap.add_argument("--server", default="http://127.0.0.1:9999")
    ap.add_argument("--api-key", default=None, help="the server's API key (default: env FACESTREAM_API_KEY)")
    ap.add_argument(
        "--mode", choices=("chunked", "render", "stream"), default="chunked",
        help="chunked: live session fed in chunks; render: whole file → MP4 (--out); "
        "stream: whole file → progressive HLS (prints the URL)",
    )  # fmt: skip
    ap.add_argument("-o", "--out", type=Path, default=Path("facestream.mp4"), help="MP4 for --mode render")
    ap.add_argument("--image", required=True, type=Path)
    ap.add_argument("--audio", required=True, type=Path)
    pace = ap.add_mutually_exclusive_group()
    pace.add_argument("--realtime", dest="realtime", action="store_true", default=True)
    pace.add_argument("--fast", dest="realtime", action="store_false")
    ap.add_argument("--chunk", type=float, default=0.5, help="seconds of audio per chunk")
    ap.add_argument("--sample-rate", type=int, default=24000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--no-crop", action="store_true")
    ap.add_argument("--wait", action="store_true", help="wait until the playlist ends, then print the status")
    ap.add_argument("--cleanup", action="store_true", help="delete the session at the end")
    args = ap.parse_args(argv)
    if args.mode != "chunked":
        return _whole_file_mode(args)

    with ChunkedStreamingClient(args.server, api_key=args.api_key) as client:
        info = client.init_session(
            args.image, crop=not args.no_crop, seed=args.seed, chunk_duration=args.chunk,
            audio_sample_rate=args.sample_rate,
        )  # fmt: skip
        print(f"session {info['session_id']}\nHLS: {client.hls_url}", flush=True)
        chunks = pcm16_chunks(args.audio, args.sample_rate, args.chunk)
        start = time.monotonic()
        for i, chunk in enumerate(chunks):
            if args.realtime and i > 1:  # stay one chunk ahead of playback, as a live source would
                time.sleep(max(0.0, start + (i - 1) * args.chunk - time.monotonic()))
            status = client.feed_audio_chunk(chunk, is_final=i == len(chunks) - 1)
            _progress(i + 1, len(chunks), status)
        sys.stderr.write("\n")
        if args.wait:
            while (status := client.get_status())["status"] in ("streaming", "draining"):
                time.sleep(0.5)
            print(json.dumps(status, indent=2))
        if args.cleanup:
            client.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
