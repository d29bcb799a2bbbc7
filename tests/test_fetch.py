"""The URL fetcher refuses hostile URLs before connecting, and fetches good ones safely.

Names go through an injected resolver (no real DNS), and the only traffic sent is to a
local HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import base64
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from retouch.errors import InvalidRequestError, PayloadTooLargeError
from retouch.fetch import FetchedFile, FetchPolicy, UrlFetcher, _system_resolver

# A 1x1 transparent PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kg"
    "AAAABJRU5ErkJggg=="
)
PUBLIC_IP = "93.184.216.34"  # only ever handed to a MockTransport, never dialled
CAP = 1024


@pytest.fixture
def anyio_backend():
    return "asyncio"


class FakeDNS:
    """An injected resolver: answers from a table, records each question."""

    def __init__(self, table: dict[str, list[str]] | None = None) -> None:
        self.table = table or {}
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        assert host in self.table, f"unexpected DNS lookup for {host!r}"
        return self.table[host]


class Tripwire(httpx.AsyncBaseTransport):
    """A transport that records requests and fails the test if any arrives."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        raise AssertionError(f"a refused URL reached the network: {request.url}")


# --- the hostile table ----------------------------------------------------------------

HOSTILE_DNS = {
    "rebind.example": ["127.0.0.1"],  # public-looking name, hostile answer
    "mixed.example": [PUBLIC_IP, "10.1.2.3"],  # one good answer is not enough
    "v6only.example": ["::1"],
    "mapped.example": ["::ffff:169.254.169.254"],
}

NOT_ALLOWED = [
    "http://localhost/",
    "http://localhost./",
    "http://LOCALHOST:8080/x.png",
    "http://images.localhost/",
    "http://127.0.0.1:8080/",
    "http://127.1/",
    "http://2130706433/",
    "http://0x7f.0.0.1/",
    "http://0x7f000001/",
    "http://0/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[64:ff9b::7f00:1]/",  # NAT64 of 127.0.0.1
    "http://[64:ff9b::a00:1]/",  # NAT64 of 10.0.0.1
    "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    "http://[2002:c0a8:101::1]/",  # 6to4 of 192.168.1.1
    "http://10.0.0.1/",
    "http://192.168.1.1/",
    "http://172.16.0.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:a9fe:a9fe]/latest/meta-data/",
    "http://[fd00:ec2::254]/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://metadata/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://0.0.0.0/",
    "http://[::]/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[fec0::1]/",
    "http://[ff02::1]/",
    "https://127.0.0.1/x.png",
    "http://rebind.example/x.png",
    "http://mixed.example/x.png",
    "http://v6only.example/",
    "http://mapped.example/",
]

INVALID = [
    "file:///etc/passwd",
    "ftp://example.com/x.png",
    "gopher://example.com:70/_GET%20/",
    "data:image/png;base64,iVBORw0KGgo=",
    "javascript:alert(1)",
    "example.com/x.png",
    "//example.com/x.png",
    "http:///x.png",
    "http://user:pass@example.com/",
    "http://user@example.com/",
    "http://0177.0.0.1/",  # httpx rejects this octal spelling outright
    "http://example.com:99999/",
    "http://example.com/" + "a" * 8200,
]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("url", "code"),
    [(u, "url_not_allowed") for u in NOT_ALLOWED] + [(u, "invalid_url") for u in INVALID],
)
async def test_hostile_urls_are_refused_before_any_connection(url: str, code: str) -> None:
    dns, wire = FakeDNS(HOSTILE_DNS), Tripwire()
    fetcher = UrlFetcher(FetchPolicy(), resolver=dns, transport=wire)
    with pytest.raises(InvalidRequestError) as info:
        await fetcher.fetch(url, param="image_url")
    await fetcher.aclose()
    assert (info.value.code, info.value.param, info.value.status) == (code, "image_url", 400)
    assert wire.requests == []
    assert {host for host, _ in dns.calls} <= set(HOSTILE_DNS)


@pytest.mark.anyio
async def test_refusal_message_names_host_and_both_ways_to_allow_it() -> None:
    fetcher = UrlFetcher(FetchPolicy(), resolver=FakeDNS(HOSTILE_DNS), transport=Tripwire())
    with pytest.raises(InvalidRequestError) as info:
        await fetcher.fetch("http://rebind.example/x.png")
    message = info.value.message
    assert "rebind.example" in message and "127.0.0.1" in message
    assert "RETOUCH_ALLOW_PRIVATE_URLS=true" in message and "RETOUCH_ALLOWED_HOSTS" in message


@pytest.mark.anyio
@pytest.mark.parametrize("url", ["http://169.254.169.254/", "http://metadata.google.internal/"])
async def test_metadata_stays_refused_even_when_private_addresses_are_allowed(url: str) -> None:
    dns = FakeDNS({"metadata.google.internal": ["169.254.169.254"]})
    fetcher = UrlFetcher(FetchPolicy(allow_private=True), resolver=dns, transport=Tripwire())
    with pytest.raises(InvalidRequestError) as info:
        await fetcher.fetch(url)
    assert info.value.code == "url_not_allowed"
    assert "RETOUCH_ALLOWED_HOSTS" in info.value.message


@pytest.mark.anyio
async def test_allow_private_still_refuses_other_schemes() -> None:
    fetcher = UrlFetcher(FetchPolicy(allow_private=True), transport=Tripwire())
    with pytest.raises(InvalidRequestError) as info:
        await fetcher.fetch("file:///etc/passwd")
    assert info.value.code == "invalid_url"


@pytest.mark.anyio
async def test_unresolvable_name_fails_cleanly() -> None:
    async def nxdomain(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    fetcher = UrlFetcher(FetchPolicy(), resolver=nxdomain, transport=Tripwire())
    with pytest.raises(InvalidRequestError) as info:
        await fetcher.fetch("http://nowhere.example/x.png")
    assert info.value.code == "image_fetch_failed"
    assert "nowhere.example" in info.value.message


# --- the request that goes out (no network) -------------------------------------------


class Recorder(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, headers={"content-type": "image/png"}, content=PNG)


@pytest.mark.anyio
async def test_https_request_dials_checked_ip_and_keeps_name_for_host_and_tls() -> None:
    dns, wire = FakeDNS({"images.example": [PUBLIC_IP]}), Recorder()
    fetcher = UrlFetcher(FetchPolicy(), resolver=dns, transport=wire)
    got = await fetcher.fetch("https://images.example/cat.png?size=2")
    await fetcher.aclose()
    (request,) = wire.requests
    assert str(request.url) == f"https://{PUBLIC_IP}/cat.png?size=2"
    assert request.headers["host"] == "images.example"
    assert request.extensions["sni_hostname"] == "images.example"
    assert dns.calls == [("images.example", 443)]
    assert got == FetchedFile("https://images.example/cat.png?size=2", "image/png", PNG)


@pytest.mark.anyio
async def test_ipv6_and_ipv4_mapped_public_addresses_are_allowed() -> None:
    dns = FakeDNS({"v6.example": ["2606:4700::1111"], "m.example": ["::ffff:93.184.216.34"]})
    wire = Recorder()
    fetcher = UrlFetcher(FetchPolicy(), resolver=dns, transport=wire)
    await fetcher.fetch("http://v6.example:8080/a.png")
    await fetcher.fetch("http://m.example/a.png")
    assert [str(r.url) for r in wire.requests] == [
        "http://[2606:4700::1111]:8080/a.png",
        "http://[::ffff:5db8:d822]/a.png",
    ]
    assert wire.requests[0].headers["host"] == "v6.example:8080"
    assert "sni_hostname" not in wire.requests[0].extensions


# --- a real server on 127.0.0.1 ---------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # chunked bodies need 1.1

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.server.seen.append((self.path, self.headers["Host"]))  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        route, _, arg = url.path.strip("/").partition("/")
        if route == "img.png":
            self.reply(200, PNG, "image/png")
        elif route == "hop":  # /hop/N redirects N times, then serves the PNG
            n = int(arg)
            self.redirect(f"/hop/{n - 1}" if n > 1 else "/img.png")
        elif route == "to":  # /to?loc=URL[&code=N] redirects once to URL
            query = parse_qs(url.query)
            self.redirect(query["loc"][0], int(query.get("code", ["302"])[0]))
        elif route == "big":
            self.reply(200, b"x" * int(arg), "image/png")
        elif route == "chunked":
            self.chunked(int(arg))
        elif route == "slow":
            time.sleep(1.0)
            self.reply(200, PNG, "image/png")
        else:
            self.reply(404, b"not here", "text/plain")

    def reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location: str, status: int = 302) -> None:
        self.send_response(status)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def chunked(self, size: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for _ in range(0, size, 256):
            self.wfile.write(b"100\r\n" + b"x" * 256 + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")


class LocalServer:
    def __init__(self, httpd: ThreadingHTTPServer) -> None:
        self.httpd = httpd
        self.port = httpd.server_address[1]
        self.seen: list[tuple[str, str]] = httpd.seen  # type: ignore[attr-defined]

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    @property
    def paths(self) -> list[str]:
        return [path for path, _ in self.seen]


@pytest.fixture
def origin():
    """A local HTTP server on 127.0.0.1 that records (path, Host) of each request."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.seen = []  # type: ignore[attr-defined]
    httpd.handle_error = lambda *args: None  # a client that hung up is not a test failure
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    yield LocalServer(httpd)
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def local_fetcher(**policy: object) -> UrlFetcher:
    settings = {"allow_private": True, "max_bytes": CAP, **policy}
    return UrlFetcher(FetchPolicy(**settings), resolver=FakeDNS())  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_allow_private_fetches_the_png(origin: LocalServer) -> None:
    fetcher = local_fetcher()
    got = await fetcher.fetch(origin.url("/img.png"))
    await fetcher.aclose()
    assert got == FetchedFile(origin.url("/img.png"), "image/png", PNG)
    assert origin.seen == [("/img.png", f"127.0.0.1:{origin.port}")]


@pytest.mark.anyio
async def test_default_policy_refuses_the_same_url_without_a_request(origin: LocalServer) -> None:
    fetcher = UrlFetcher(FetchPolicy(), resolver=FakeDNS())
    with pytest.raises(InvalidRequestError) as info:
        await fetcher.fetch(origin.url("/img.png"))
    assert info.value.code == "url_not_allowed"
    assert "127.0.0.1" in info.value.message
    assert origin.seen == []


@pytest.mark.anyio
async def test_allowed_ip_literal_admits_that_address_in_any_spelling(origin: LocalServer) -> None:
    # An IP entry in allowed_hosts means that address, however the URL spells it.
    fetcher = UrlFetcher(FetchPolicy(allowed_hosts=frozenset({"127.0.0.1"})), resolver=FakeDNS())
    assert (await fetcher.fetch(origin.url("/img.png"))).data == PNG
    assert (await fetcher.fetch(origin.url("/img.png", host="2130706433"))).data == PNG
    await fetcher.aclose()
    assert len(origin.seen) == 2


@pytest.mark.anyio
async def test_allowed_ip_literal_does_not_admit_names_that_resolve_to_it(
    origin: LocalServer,
) -> None:
    dns = FakeDNS({"rebind.example": ["127.0.0.1"]})
    fetcher = UrlFetcher(FetchPolicy(allowed_hosts=frozenset({"127.0.0.1"})), resolver=dns)
    for host in ("localhost", "rebind.example", "[::1]"):
        with pytest.raises(InvalidRequestError) as info:
            await fetcher.fetch(origin.url("/img.png", host=host))
        assert info.value.code == "url_not_allowed"
    assert origin.seen == []


@pytest.mark.anyio
async def test_allowed_name_connects_to_the_checked_ip_with_the_original_host(
    origin: LocalServer,
) -> None:
    dns = FakeDNS({"images.test": ["127.0.0.1"]})
    fetcher = UrlFetcher(FetchPolicy(allowed_hosts=frozenset({"Images.Test"})), resolver=dns)
    got = await fetcher.fetch(origin.url("/img.png", host="images.test"))
    await fetcher.aclose()
    assert got.data == PNG and got.url == origin.url("/img.png", host="images.test")
    assert origin.seen == [("/img.png", f"images.test:{origin.port}")]
    assert dns.calls == [("images.test", origin.port)]  # resolved once, never again


@pytest.mark.anyio
@pytest.mark.parametrize("hops", [1, 3])
async def test_redirects_within_the_limit_are_followed(origin: LocalServer, hops: int) -> None:
    fetcher = local_fetcher()
    got = await fetcher.fetch(origin.url(f"/hop/{hops}"))
    await fetcher.aclose()
    assert got.data == PNG and got.url == origin.url("/img.png")
    assert len(origin.seen) == hops + 1


@pytest.mark.anyio
@pytest.mark.parametrize("status", [301, 303, 307, 308])
async def test_every_redirect_status_is_followed(origin: LocalServer, status: int) -> None:
    fetcher = local_fetcher()
    got = await fetcher.fetch(origin.url(f"/to?loc=/img.png&code={status}"))
    await fetcher.aclose()
    assert got.data == PNG and origin.paths[-1] == "/img.png"


@pytest.mark.anyio
async def test_one_redirect_too_many_fails(origin: LocalServer) -> None:
    fetcher = local_fetcher()
    with pytest.raises(InvalidRequestError) as info:
        await fetcher.fetch(origin.url("/hop/4"), param="image")
    assert (info.value.code, info.value.param) == ("too_many_redirects", "image")
    assert origin.paths == ["/hop/4", "/hop/3", "/hop/2", "/hop/1"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "target",
    ["http://localhost:{port}/img.png", "http://rebind.example:{port}/", "file:///etc/passwd"],
)
async def test_redirect_target_is_checked_again(origin: LocalServer, target: str) -> None:
    # 127.0.0.1 is let in by name only, so the redirect's new host must pass on its own.
    dns = FakeDNS({"rebind.example": ["127.0.0.1"]})
    fetcher = UrlFetcher(FetchPolicy(allowed_hosts=frozenset({"127.0.0.1"})), resolver=dns)
    path = "/to?" + str(httpx.QueryParams(loc=target.format(port=origin.port)))
    with pytest.raises(InvalidRequestError) as info:
        await fetcher.fetch(origin.url(path))
    assert info.value.code == ("invalid_url" if target.startswith("file:") else "url_not_allowed")
    assert origin.paths == [path]  # the first hop only


@pytest.mark.anyio
@pytest.mark.parametrize("path", [f"/big/{CAP + 1}", f"/chunked/{4 * CAP}"])
async def test_bodies_over_the_cap_are_refused(origin: LocalServer, path: str) -> None:
    fetcher = local_fetcher()
    with pytest.raises(PayloadTooLargeError) as info:
        await fetcher.fetch(origin.url(path))
    await fetcher.aclose()
    error = info.value
    assert (error.code, error.param, error.status) == ("image_too_large", "image_urls", 413)
    assert str(CAP) in error.message and "RETOUCH_MAX_FETCH_BYTES" in error.message


@pytest.mark.anyio
@pytest.mark.parametrize("path", [f"/big/{CAP}", f"/chunked/{CAP}"])
async def test_bodies_at_the_cap_are_accepted(origin: LocalServer, path: str) -> None:
    fetcher = local_fetcher()
    assert len((await fetcher.fetch(origin.url(path))).data) == CAP
    await fetcher.aclose()


@pytest.mark.anyio
async def test_slow_source_hits_the_total_deadline(origin: LocalServer) -> None:
    fetcher = local_fetcher(total_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(InvalidRequestError) as info:
        await fetcher.fetch(origin.url("/slow"))
    await fetcher.aclose()
    assert time.monotonic() - started < 0.9
    assert info.value.code == "image_fetch_timeout"
    assert "127.0.0.1" in info.value.message


@pytest.mark.anyio
async def test_error_status_from_the_source_is_reported(origin: LocalServer) -> None:
    fetcher = local_fetcher()
    with pytest.raises(InvalidRequestError) as info:
        await fetcher.fetch(origin.url("/missing.png"))
    await fetcher.aclose()
    assert info.value.code == "image_fetch_failed"
    assert "404" in info.value.message


@pytest.mark.anyio
async def test_connection_refused_is_reported_not_raised_raw(origin: LocalServer) -> None:
    port = origin.port
    origin.httpd.shutdown()
    origin.httpd.server_close()  # nothing listens on the port now
    fetcher = local_fetcher()
    with pytest.raises(InvalidRequestError) as info:
        await fetcher.fetch(f"http://127.0.0.1:{port}/img.png")
    await fetcher.aclose()
    assert info.value.code == "image_fetch_failed"


@pytest.mark.anyio
async def test_proxy_environment_is_ignored_and_client_is_shared(
    origin: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    fetcher = local_fetcher()
    await fetcher.fetch(origin.url("/img.png"))
    client = fetcher._client
    await fetcher.fetch(origin.url("/img.png"))
    assert fetcher._client is client is not None
    await fetcher.aclose()
    await fetcher.aclose()  # closing twice is harmless
    assert fetcher._client is None
    assert len(origin.seen) == 2


@pytest.mark.anyio
async def test_default_resolver_returns_address_strings() -> None:
    # A numeric host, so getaddrinfo answers without asking any DNS server.
    assert await _system_resolver("127.0.0.1", 80) == ["127.0.0.1"]
