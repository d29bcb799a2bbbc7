"""Real servers for tests: retouch under uvicorn, and a static file server, on 127.0.0.1."""

from __future__ import annotations

import contextlib
import functools
import http.server
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import uvicorn

from retouch.app import create_app
from retouch.config import Settings


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
