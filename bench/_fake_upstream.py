"""Shared by the benchmarks: a fake OpenAI-compatible images upstream, on 127.0.0.1.

    with FakeUpstream(png_path, delay=2.0) as upstream:   # starts, waits for /healthz
        httpx.post(upstream.url + "/v1/images/edits", json={...})
    # stopped (SIGTERM, then SIGKILL after a grace period)

It answers ``POST …/images/edits`` and ``POST …/images/generations`` (any prefix, any
body, which it reads and ignores) with one precomputed JSON body,
``{"created": …, "data": [{"b64_json": <the PNG>, "revised_prompt": ""}]}``, after
``--delay`` seconds (``asyncio.sleep``: a slow model, not a busy server). It is a raw ASGI
app under uvicorn (uvloop, httptools, no access log) in its own process, so that it shares
no GIL with the benchmark's client and costs next to nothing per request.

Run by hand: ``.venv/bin/python bench/_fake_upstream.py --port 9000 --png some.png [--delay 2]``
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import free_port, terminate, wait_healthy  # noqa: E402

HOST = "127.0.0.1"
_ROUTES = (b"/images/edits", b"/images/generations")


def answer_body(png: bytes) -> bytes:
    """The JSON answer, built once."""
    return json.dumps({
        "created": int(time.time()),
        "data": [{"b64_json": base64.b64encode(png).decode("ascii"), "revised_prompt": ""}],
    }).encode()


def make_app(body: bytes, delay: float):
    """A raw ASGI app: the images routes answer ``body`` after ``delay``; /healthz 200."""
    json_headers = [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())]

    async def app(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path = scope["raw_path"].split(b"?", 1)[0]
        more = True
        while more:  # read (and drop) the whole request body, as a real server does
            message = await receive()
            more = message.get("more_body", False) and message["type"] == "http.request"
        if scope["method"] == "POST" and path.endswith(_ROUTES):
            if delay > 0:
                await asyncio.sleep(delay)
            await send({"type": "http.response.start", "status": 200, "headers": json_headers})
            await send({"type": "http.response.body", "body": body})
        elif scope["method"] == "GET" and path == b"/healthz":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})
        else:
            await send({"type": "http.response.start", "status": 404,
                        "headers": [(b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})

    return app


def serve(port: int, png_path: Path, delay: float) -> None:
    import uvicorn

    app = make_app(answer_body(png_path.read_bytes()), delay)
    uvicorn.run(app, host=HOST, port=port, loop="uvloop", http="httptools", lifespan="on",
                access_log=False, log_level="warning", backlog=4096, timeout_keep_alive=120)


class FakeUpstream:
    """The fake in a subprocess; a context manager that always stops it."""

    def __init__(self, png_path: Path, *, delay: float = 0.0, start_timeout: float = 20.0,
                 stop_timeout: float = 5.0) -> None:
        self.png_path = Path(png_path)
        self.delay = delay
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.port = 0
        self.url = ""
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def api_base(self) -> str:
        return self.url + "/v1"

    def start(self) -> FakeUpstream:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self._log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--port", str(self.port), "--png", str(self.png_path),
             "--delay", str(self.delay)],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self) -> None:
        wait_healthy(self.proc, self.url, self.start_timeout, "fake upstream", self.log_tail)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            terminate(proc, self.stop_timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, chars: int = 3000) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-chars:]

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--png", type=Path, required=True, help="the image every answer carries")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args()
    serve(args.port, args.png, args.delay)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
