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

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

KEEPALIVE_CONNECTIONS = 64


def upstream_client(max_connections: int, timeout: httpx.Timeout) -> httpx.AsyncClient:
    """A client for one provider, holding at most ``max_connections`` connections."""
    limits = httpx.Limits(max_connections=max_connections,
                          max_keepalive_connections=min(KEEPALIVE_CONNECTIONS, max_connections))
    return httpx.AsyncClient(timeout=timeout, limits=limits,
                             transport=PreciseAiohttpTransport(verify=tls_context(), limits=limits))


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
