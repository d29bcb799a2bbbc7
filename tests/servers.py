"""Real servers for tests: retouch under uvicorn, and a static file server, on 127.0.0.1."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from retouch.app import create_app
from retouch.config import Settings
from tests.backing import free_port


def _bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.contextmanager
def serving(app=None, *, app_for_url: Callable[[str], Any] | None = None,
            **config_options) -> Iterator[str]:
    """Any ASGI app under a real uvicorn server in a thread, on a free port of 127.0.0.1;
    yields its base URL and stops it on exit. ``app_for_url`` instead makes the app from
    that base URL. ``config_options`` go to uvicorn.Config."""
    sock = _bound_socket()
    if app_for_url is not None:
        app = app_for_url(f"http://127.0.0.1:{sock.getsockname()[1]}")
    config = uvicorn.Config(app, **{"log_level": "warning", "lifespan": "on", **config_options})
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("test server failed to start")
            threading.Event().wait(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextlib.contextmanager
def running_retouch(settings: Settings, *, lends_links: bool = False) -> Iterator[str]:
    """A real uvicorn server running retouch in a thread; yields its base URL. With
    ``lends_links`` its own URL is its public URL and input images go to providers as
    signed links to it."""
    def app_for_url(url: str):
        if not lends_links:
            return create_app(settings)
        return create_app(settings.model_copy(update={"public_url": url, "input_links": "always"}))

    with serving(app_for_url=app_for_url) as url:
        yield url


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - silence request logs in test output
        pass


@contextlib.contextmanager
def static_server(directory: Path) -> Iterator[str]:
    """Serve ``directory`` over HTTP on 127.0.0.1; yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@dataclass
class ServeProcess:
    """``retouch serve`` running as its own process; ``log`` collects its stderr."""

    process: subprocess.Popen
    base: str
    port: int
    log: Path

    def log_lines(self) -> list[str]:
        return [line for line in self.log.read_text(encoding="utf-8").splitlines() if line.strip()]


@contextlib.contextmanager
def retouch_serve(tmp_path: Path, env: dict[str, str] | None = None, *args: str) -> Iterator[ServeProcess]:
    """Start ``retouch serve`` on a free port with ``env`` added to this environment, wait
    until it answers /healthz, and stop it (SIGTERM, then SIGKILL) on the way out."""
    port = free_port()
    tmp_path.mkdir(parents=True, exist_ok=True)
    log = tmp_path / f"serve-{port}.log"
    environment = {**os.environ, "RETOUCH_DATA_DIR": str(tmp_path / "var"), **(env or {})}
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "retouch.cli", "serve", "--port", str(port), *args],
                                   cwd=tmp_path, env=environment, stdout=sink, stderr=subprocess.STDOUT)
    served = ServeProcess(process, f"http://127.0.0.1:{port}", port, log)
    try:
        _wait_healthy(served)
        yield served
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def _wait_healthy(served: ServeProcess, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            raise RuntimeError(f"retouch serve exited with {served.process.returncode}:\n"
                               + served.log.read_text(errors="replace"))
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{served.base}/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError("retouch serve did not answer /healthz in time:\n" + served.log.read_text(errors="replace"))
