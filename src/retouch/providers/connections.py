"""The HTTP client every hosted backend talks to its provider with: httpx's API over
aiohttp's connection pool and C parser.

With httpx's own pool, a gateway burns its CPU on the pool's bookkeeping (work in
proportion to its size on every request: encode/httpcore#1035) and on reading large
answers through a pure-Python parser, 64 kB at a time. ``bench/gateway_overhead.py``
measured aiohttp underneath at about half the server CPU per request. The adapters keep
httpx's request building (``json=``, ``files=``) and its ``Response``.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

import aiohttp
import httpx
import orjson
from httpx_aiohttp import AiohttpTransport

from retouch import __version__

KEEPALIVE_CONNECTIONS = 64
DEFAULT_HEADERS = {"user-agent": f"retouch/{__version__}", "accept": "*/*"}


class UpstreamClient:
    """Sends ``httpx.Request``s to one provider and reads the whole answer.

    Leaner than ``httpx.AsyncClient`` on purpose: no cookie jar (cookies one upstream sets
    must not travel with another user's job), no redirects (retouch never follows them to
    a provider), no auth hooks; a quarter of the CPU a gateway spends per job went there.
    """

    def __init__(self, max_connections: int, timeout: httpx.Timeout) -> None:
        limits = httpx.Limits(max_connections=max_connections,
                              max_keepalive_connections=min(KEEPALIVE_CONNECTIONS, max_connections))
        self.transport = PreciseAiohttpTransport(verify=tls_context(), limits=limits)
        self.timeout = timeout.as_dict()

    def build_request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                      json: Any = None, **kwargs: Any) -> httpx.Request:
        """An ``httpx.Request`` (``json=``, ``files=``, ``data=``, ``params=``, …); JSON is
        written by orjson, several times faster than httpx's json.dumps on megabytes of
        base64."""
        headers = {**DEFAULT_HEADERS, **(headers or {})}
        if json is not None:
            kwargs["content"] = orjson.dumps(json)
            headers.setdefault("content-type", "application/json")
        return httpx.Request(method, url, headers=headers, extensions={"timeout": self.timeout},
                             **kwargs)

    async def send(self, request: httpx.Request) -> httpx.Response:
        """The answer to ``request``, its body read (httpx's exceptions on failure)."""
        await request.aread()  # one buffer: a multipart body goes out in one write, not 20
        response = await self.transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    async def aclose(self) -> None:
        await self.transport.aclose()


class PreciseAiohttpTransport(AiohttpTransport):
    """``AiohttpTransport`` whose failures keep the distinction retouch's retry rule rests
    on: "nothing was sent" (connect errors and connect timeouts: safe to retry) against
    "sent, then no answer" (read timeouts, a dropped connection). The library maps every
    aiohttp connection error, a refused connection and a dropped one alike, onto
    ``ConnectTimeout``."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except httpx.TransportError as exc:
            precise = _precise_error(exc.__cause__)
            if precise is None:
                raise
            raise precise(str(exc), request=request) from exc.__cause__


def _precise_error(cause: BaseException | None) -> type[httpx.TransportError] | None:
    if isinstance(cause, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout
    if isinstance(cause, aiohttp.SocketTimeoutError):
        return httpx.ReadTimeout
    if isinstance(cause, aiohttp.ClientConnectorError):  # refused, unresolvable: never sent
        return httpx.ConnectError
    if isinstance(cause, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError)):
        return httpx.RemoteProtocolError
    if isinstance(cause, aiohttp.ClientOSError):
        return httpx.ReadError
    return None


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's default TLS settings (certifi's CAs, SSL_CERT_FILE honoured), made once:
    loading the CA bundle takes tens of milliseconds per client otherwise."""
    return httpx.create_ssl_context()
