"""Fetch images from user-supplied URLs without opening a server-side request forgery hole.

Every URL (and every redirect target) goes through the same gate: http/https only, no
userinfo, and the host is resolved once and refused if any address it resolves to is
not public. The request then connects to that checked address, with the original
``Host`` header and TLS server name, so a second DNS answer cannot swap the target.
Every failure is a ``RetouchError``; no httpx exception leaves this module.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
import httpx

from retouch.errors import InvalidRequestError, PayloadTooLargeError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

MAX_URL_LENGTH = 8192
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Names that reach the machine itself or a cloud metadata service whatever DNS says.
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
_METADATA_NAMES = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "instance-data",
     "instance-data.ec2.internal"}
)
_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the low 32 bits are the IPv4 target
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: local use only
_NON_PUBLIC = (
    "is_private", "is_loopback", "is_link_local", "is_multicast", "is_reserved", "is_unspecified"
)


@dataclass(frozen=True)
class FetchPolicy:
    max_bytes: int = 20 * 1024 * 1024
    connect_timeout: float = 10.0
    total_timeout: float = 60.0
    max_redirects: int = 3
    allow_private: bool = False  # RETOUCH_ALLOW_PRIVATE_URLS
    # RETOUCH_ALLOWED_HOSTS: ASCII host names (or IP literals, in any spelling) let through
    # whatever they resolve to.
    allowed_hosts: frozenset[str] = frozenset()


@dataclass
class FetchedFile:
    url: str  # final URL after redirects, as the user would write it (not the pinned IP)
    content_type: str | None
    data: bytes


def _literal_ip(host: str) -> IPAddress | None:
    """The address an IP-literal host means, legacy spellings included (0x7f.1, 2130706433)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:  # inet_aton reads decimal, octal, hex and short forms the way the C resolver does
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def _host_key(host: str) -> str:
    """Normal form for comparing hosts: lower case, no trailing dot, canonical IP text."""
    host = host.strip("[]").rstrip(".").lower()
    ip = _literal_ip(host)
    return str(ip) if ip is not None else host


def _is_public(ip: IPAddress) -> bool:
    """True only for globally routable unicast addresses, looking inside IPv6 wrappers of IPv4."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL:
            return False
        if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d is a.b.c.d
            return _is_public(ip.ipv4_mapped)
        if ip in _NAT64:  # a NAT64 gateway forwards to the embedded IPv4 address
            return _is_public(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        embedded = [ip.sixtofour, *(ip.teredo or ())]
        if not all(_is_public(v4) for v4 in embedded if v4 is not None):
            return False
        if ip.is_site_local:
            return False
    return ip.is_global and not any(getattr(ip, flag) for flag in _NON_PUBLIC)


def _is_metadata(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip in _METADATA_ADDRESSES


async def _system_resolver(host: str, port: int) -> list[str]:
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


class UrlFetcher:
    """Download one image URL under a ``FetchPolicy``.

    ``fetch`` returns the body as a ``FetchedFile`` or raises ``InvalidRequestError``
    (codes ``invalid_url``, ``url_not_allowed``, ``too_many_redirects``,
    ``image_fetch_timeout``, ``image_fetch_failed``) or ``PayloadTooLargeError``
    (``image_too_large``), each with ``param`` set to the caller's parameter name.
    ``resolver`` (async ``(host, port) -> [ip, ...]``) and ``transport`` are for tests.
    """

    def __init__(
        self,
        policy: FetchPolicy,
        *,
        resolver: Resolver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.policy = policy
        self._resolver = resolver or _system_resolver
        self._transport = transport
        self._allowed = frozenset(_host_key(h) for h in policy.allowed_hosts)
        self._client: httpx.AsyncClient | None = None

    async def aclose(self) -> None:
        """Close the shared client; the fetcher may be used again afterwards."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def fetch(self, url: str, *, param: str = "image_urls") -> FetchedFile:
        """Fetch ``url``, following checked redirects; errors name ``param``."""
        target = _parse(url, param)
        try:
            # One deadline for DNS, every redirect hop and the whole body.
            with anyio.fail_after(self.policy.total_timeout):
                return await self._follow(target, param)
        except TimeoutError:
            raise self._timeout(target, param) from None

    async def _follow(self, url: httpx.URL, param: str) -> FetchedFile:
        for _ in range(self.policy.max_redirects + 1):
            response = await self._send(url, await self._checked_address(url, param), param)
            try:
                if response.status_code in _REDIRECTS and "location" in response.headers:
                    url = _parse(response.headers["location"], param, base=url)
                    continue
                if not response.is_success:
                    raise _failed(url, param, f"answered HTTP {response.status_code}")
                data = await self._read_capped(response, url, param)
                return FetchedFile(str(url), response.headers.get("content-type"), data)
            finally:
                await response.aclose()
        raise InvalidRequestError(
            f"{param}: '{url.host}' redirected more than {self.policy.max_redirects} times.",
            param=param,
            code="too_many_redirects",
        )

    async def _checked_address(self, url: httpx.URL, param: str) -> IPAddress:
        """Resolve once and return the address to connect to, or refuse the URL."""
        host = _host_key(url.raw_host.decode("ascii"))
        if host in self._allowed:
            return (await self._resolve(url, host, param))[0]
        # Metadata services hand out credentials: only an explicit allowed host opens them.
        if host in _METADATA_NAMES:
            raise _refused(url, param, "a cloud metadata service", metadata=True)
        if not self.policy.allow_private and (host in _LOCAL_NAMES or host.endswith(".localhost")):
            raise _refused(url, param, "this server itself")
        addresses = await self._resolve(url, host, param)
        # One bad answer refuses the URL, even though only the first one is dialled.
        for ip in addresses:
            if _is_metadata(ip):
                raise _refused(url, param, f"{ip}, a cloud metadata service", metadata=True)
            if not self.policy.allow_private and not _is_public(ip):
                raise _refused(url, param, f"{ip}, a private or reserved address")
        return addresses[0]

    async def _resolve(self, url: httpx.URL, host: str, param: str) -> list[IPAddress]:
        literal = _literal_ip(host)
        if literal is not None:
            return [literal]
        try:
            answers = await self._resolver(host, url.port or _DEFAULT_PORTS[url.scheme])
            addresses = [ipaddress.ip_address(a) for a in answers]
        except (OSError, ValueError):
            addresses = []
        if not addresses:
            raise _failed(url, param, "could not be resolved")
        return addresses

    async def _send(self, url: httpx.URL, ip: IPAddress, param: str) -> httpx.Response:
        """GET ``url`` over a connection to ``ip``: the URL names the IP, the headers the host."""
        host = url.raw_host.decode("ascii").rstrip(".")
        # TLS must still present and verify the real name, not the IP we dial.
        extensions = {"sni_hostname": host} if url.scheme == "https" else {}
        headers = {
            "Host": url.netloc.decode("ascii"),
            "Accept": "image/*",
            "Accept-Encoding": "identity",  # count the bytes we store, not a compressed stream
        }
        client = self._get_client()
        try:
            pinned = url.copy_with(host=str(ip))
            request = client.build_request("GET", pinned, headers=headers, extensions=extensions)
            return await client.send(request, stream=True)
        except httpx.TimeoutException:
            raise self._timeout(url, param) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise _failed(url, param, f"could not be reached ({type(exc).__name__})") from None

    async def _read_capped(self, response: httpx.Response, url: httpx.URL, param: str) -> bytes:
        limit = self.policy.max_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise self._too_large(url, param)
        body = bytearray()
        try:
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > limit:  # a missing or lying Content-Length stops here
                    raise self._too_large(url, param)
        except httpx.TimeoutException:
            raise self._timeout(url, param) from None
        except (httpx.HTTPError, httpx.StreamError) as exc:
            raise _failed(url, param, f"broke off the download ({type(exc).__name__})") from None
        return bytes(body)

    def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self._transport,
                follow_redirects=False,  # each hop must pass the address check again
                trust_env=False,  # a proxy from the environment would do its own DNS
                timeout=httpx.Timeout(
                    self.policy.total_timeout, connect=self.policy.connect_timeout
                ),
                # Pooled connections are keyed by IP; reusing a TLS one for another host
                # name on the same IP would skip that name's certificate check.
                limits=httpx.Limits(max_keepalive_connections=0),
            )
        return self._client

    def _timeout(self, url: httpx.URL, param: str) -> InvalidRequestError:
        policy = self.policy
        limits = f"{policy.connect_timeout:g} s to connect, {policy.total_timeout:g} s in all"
        return InvalidRequestError(
            f"{param}: fetching the image from '{url.host}' timed out ({limits}).",
            param=param,
            code="image_fetch_timeout",
        )

    def _too_large(self, url: httpx.URL, param: str) -> PayloadTooLargeError:
        limit = self.policy.max_bytes
        return PayloadTooLargeError(
            f"{param}: the image at '{url.host}' is larger than the {limit}-byte limit; "
            "raise RETOUCH_MAX_FETCH_BYTES to accept it.",
            param=param,
            code="image_too_large",
        )


def _parse(url: str, param: str, *, base: httpx.URL | None = None) -> httpx.URL:
    """Parse (against ``base`` for a redirect) and check the URL's form, not its addresses."""
    try:
        if len(url) > MAX_URL_LENGTH:
            raise httpx.InvalidURL(f"it is longer than {MAX_URL_LENGTH} characters")
        parsed = base.join(url) if base is not None else httpx.URL(url)
    except httpx.InvalidURL as exc:
        problem: str | None = str(exc)
    else:
        problem = _form_problem(parsed)
    if problem is None:
        return parsed
    message = f"{param}: the URL is not usable: {problem}."
    raise InvalidRequestError(message, param=param, code="invalid_url")


def _form_problem(url: httpx.URL) -> str | None:
    if url.scheme not in _DEFAULT_PORTS:
        return f"only http and https are fetched, not '{url.scheme or 'no scheme'}'"
    if not url.host:
        return "it has no host"
    if url.userinfo:  # credentials in URLs leak into logs and confuse host parsing
        return "it carries a user name or password"
    if url.port is not None and not 0 < url.port < 65536:
        return f"port {url.port} is out of range"
    return None


def _refused(
    url: httpx.URL, param: str, what: str, *, metadata: bool = False
) -> InvalidRequestError:
    host = url.host
    how = f"add '{host}' to RETOUCH_ALLOWED_HOSTS"
    if not metadata:  # RETOUCH_ALLOW_PRIVATE_URLS does not open metadata services
        how = f"set RETOUCH_ALLOW_PRIVATE_URLS=true or {how}"
    return InvalidRequestError(
        f"{param}: refusing to fetch from '{host}': it points to {what}. To allow it, {how}.",
        param=param,
        code="url_not_allowed",
    )


def _failed(url: httpx.URL, param: str, what: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"{param}: could not fetch the image: '{url.host}' {what}.",
        param=param,
        code="image_fetch_failed",
    )
