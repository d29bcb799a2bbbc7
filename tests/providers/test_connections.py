"""The upstream client: httpx's API on aiohttp, with failures that say whether the
request was sent (what the retry rule rests on). Real sockets on 127.0.0.1."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from retouch.errors import RetouchError, UpstreamError, UpstreamTimeoutError
from retouch.providers.connections import UpstreamClient
from retouch.providers.hosted import CURRENT_ATTEMPT, Attempt, HostedEditModel
from retouch.providers.router import retryable
from tests.servers import serving

TIMEOUT = httpx.Timeout(5.0, connect=2.0)


@contextlib.contextmanager
def raw_server(behaviour: str) -> Iterator[str]:
    """A TCP server that reads a request, then ``close``s at once or ``stall``s silently."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        held = []
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.recv(65536)
            if behaviour == "close":
                conn.close()
            else:
                held.append(conn)
        for conn in held:
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


async def exchange(url: str, timeout: httpx.Timeout = TIMEOUT) -> httpx.Response:
    client = UpstreamClient(10, timeout)
    try:
        return await client.send(client.build_request("POST", url, json={"prompt": "x"}))
    finally:
        await client.aclose()


def test_a_refused_connection_is_a_connect_error_nothing_was_sent():
    with pytest.raises(httpx.ConnectError):
        anyio.run(exchange, closed_port() + "/edit")


def test_a_connection_dropped_after_sending_is_a_protocol_error_not_a_connect_one():
    with raw_server("close") as url, pytest.raises(httpx.RemoteProtocolError):
        anyio.run(exchange, url + "/edit")


def test_no_answer_after_sending_is_a_read_timeout():
    with raw_server("stall") as url, pytest.raises(httpx.ReadTimeout):
        anyio.run(exchange, url + "/edit", httpx.Timeout(0.3, connect=2.0))


def test_large_answers_and_multipart_bodies_arrive_whole():
    blob = bytes(range(256)) * 8192  # 2 MiB

    async def echo(request: Request) -> Response:
        async with request.form() as form:
            part = await form["file"].read()
        return Response(part + blob, headers={"x-size": str(len(part))})

    async def upload(url: str) -> httpx.Response:
        client = UpstreamClient(10, TIMEOUT)
        try:
            request = client.build_request("POST", url, files={"file": ("a.bin", b"abc" * 1000, "image/png")})
            return await client.send(request)
        finally:
            await client.aclose()

    with serving(Starlette(routes=[Route("/echo", echo, methods=["POST"])])) as url:
        answer = anyio.run(upload, url + "/echo")
    assert answer.status_code == 200 and answer.headers["x-size"] == "3000"
    assert answer.content == b"abc" * 1000 + blob


class Probe(HostedEditModel):
    provider = "probe"

    async def edit(self, job):  # pragma: no cover - only request() is exercised
        raise AssertionError


@pytest.mark.parametrize("behaviour, error, retry_safe", [
    ("refused", UpstreamError, True), ("stall", UpstreamTimeoutError, False)])
def test_hosted_request_maps_them_onto_retouch_errors(behaviour, error, retry_safe):
    async def call(url: str) -> tuple[RetouchError, Attempt]:
        model = Probe("probe", config={"api_base": url, "timeout": 0.3})
        attempt = Attempt()
        token = CURRENT_ATTEMPT.set(attempt)
        try:
            await model.request("POST", "/edit", json={})
        except error as exc:
            return exc, attempt
        finally:
            CURRENT_ATTEMPT.reset(token)
            await model.aclose()
        raise AssertionError("no error")

    with contextlib.ExitStack() as stack:
        url = closed_port() if behaviour == "refused" else stack.enter_context(raw_server("stall"))
        exc, attempt = anyio.run(call, url)
    assert "probe" in exc.message and not attempt.accepted
    assert retryable(exc, attempt) is retry_safe


def test_cookies_an_upstream_sets_are_never_sent_back():
    seen: list[str] = []

    async def jar(request: Request) -> Response:
        seen.append(request.headers.get("cookie", ""))
        return Response(b"ok", headers={"set-cookie": "session=someone-else; Path=/"})

    async def twice(url: str) -> None:
        client = UpstreamClient(10, TIMEOUT)
        try:
            for _ in range(2):
                await client.send(client.build_request("GET", url))
        finally:
            await client.aclose()

    with serving(Starlette(routes=[Route("/jar", jar)])) as url:
        anyio.run(twice, url + "/jar")
    assert seen == ["", ""]
