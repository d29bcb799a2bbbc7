"""What every hosted backend shares: its key from the environment, one HTTP client,
upstream failures mapped onto retouch's errors, and result images fetched safely.

A hosted backend subclasses ``HostedEditModel``, sets ``provider``,
``default_api_base``, ``default_api_key_env`` and ``result_hosts``, and implements
``edit(job)`` with ``self.request(...)`` for each upstream call — keeping the pure
translation (``build_request(job)``, ``parse_response(...)``) in functions of its own so
that it can be tested without a network. Models are declared in ``models.yaml``::

    - id: flux-kontext-pro
      provider: fal
      model: fal-ai/flux-pro/kontext      # the upstream model name
      api_key_env: FAL_KEY                # optional: another variable
      api_base: http://127.0.0.1:9000     # optional: a proxy or a test server
      timeout: 300                        # seconds for the whole job
      image_transport: auto               # auto: signed links when retouch has a public
                                          # URL and the provider fetches URLs; inline: never
"""

from __future__ import annotations

import contextvars
import logging
import math
import os
from dataclasses import dataclass
from typing import Any, ClassVar

import anyio
import httpx

from retouch.errors import (
    ContentPolicyError,
    InvalidRequestError,
    RateLimitError,
    RetouchError,
    UpstreamError,
    UpstreamTimeoutError,
)
from retouch.fetch import FetchPolicy, UrlFetcher
from retouch.inputs import sniff_format
from retouch.providers.base import Availability, EditJob, EditModel
from retouch.providers.connections import UpstreamClient
from retouch.providers.registry import ConfigError
from retouch.providers.transport import InputLinks, Payload, data_url

log = logging.getLogger("retouch.providers")

DEFAULT_TIMEOUT_S = 300.0  # image models take 30-90 s, sometimes minutes
CONNECT_TIMEOUT_S = 10.0
DEFAULT_MAX_CONNECTIONS = 1000


@dataclass
class Attempt:
    """One try of one job on one backend, as the router sees it.

    ``accepted`` turns true on the first 2xx answer: from then on the provider holds the
    job (a queue id, a prediction, a result being made) and may bill it, so a failure is
    final, never resubmitted. ``status`` is the last HTTP status seen (None before any).
    """

    accepted: bool = False
    status: int | None = None


# Set by the router around each call to a backend; None outside routed calls.
CURRENT_ATTEMPT: contextvars.ContextVar[Attempt | None] = contextvars.ContextVar(
    "retouch_attempt", default=None)


class HostedEditModel(EditModel):
    """Base class for backends that call a provider's HTTP API."""

    default_api_base: ClassVar[str] = ""
    default_api_key_env: ClassVar[str] = ""
    # Hosts (and their subdomains) whose result URLs may be downloaded.
    result_hosts: ClassVar[frozenset[str]] = frozenset()
    # Catalogue entries of hosted providers are served through a one-deployment router:
    # retries before the provider accepts a job, cooldown after repeated failures.
    routed_by_default: ClassVar[bool] = True
    # Whether the provider fetches input images by URL (then they may go as signed links).
    accepts_image_links: ClassVar[bool] = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.api_base = str(self.config.get("api_base") or self.default_api_base).rstrip("/")
        self.api_key_env = str(self.config.get("api_key_env") or self.default_api_key_env)
        self.upstream_model = str(self.config.get("model") or self.id)
        self.timeout = float(self.config.get("timeout") or DEFAULT_TIMEOUT_S)
        self.image_transport = str(self.config.get("image_transport") or "auto")
        if self.image_transport not in ("auto", "inline"):
            raise ConfigError(f"{self.id}: image_transport {self.image_transport!r} is unknown; "
                              "choose auto or inline")
        self._client: UpstreamClient | None = None
        self._fetcher: UrlFetcher | None = None

    # -- keys ---------------------------------------------------------------------------

    def api_key(self) -> str:
        """The key, read when needed so a rotated variable takes effect at once."""
        return os.environ.get(self.api_key_env, "")

    def availability(self) -> Availability:
        if self.api_key():
            return Availability(True)
        return Availability(
            False,
            reason=f"{self.api_key_env} is not set",
            fix=f"set {self.api_key_env} to your {self.provider} API key and restart retouch",
        )

    # -- HTTP ---------------------------------------------------------------------------

    def client(self) -> UpstreamClient:
        if self._client is None:
            # Image jobs hold a connection for a minute or more: httpx's default of 100
            # connections would queue the 101st job behind them (config: max_connections).
            limit = int(self.config.get("max_connections") or DEFAULT_MAX_CONNECTIONS)
            self._client = UpstreamClient(limit, httpx.Timeout(self.timeout, connect=CONNECT_TIMEOUT_S))
        return self._client

    async def aclose(self) -> None:
        for closable in (self._client, self._fetcher):
            if closable is not None:
                await closable.aclose()
        self._client = self._fetcher = None

    async def send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One upstream exchange, its body read; httpx's exceptions and any status pass
        through (``request`` maps them onto retouch's errors)."""
        target = url if url.startswith(("http://", "https://")) else self.api_base + url
        client = self.client()
        return await client.send(client.build_request(method, target, **kwargs))

    async def request(self, method: str, url: str, *, takes_job: bool = True,
                      **kwargs: Any) -> httpx.Response:
        """One upstream call; network failures and error statuses raise retouch errors.

        A 2xx answer marks the attempt accepted (the provider holds the job) unless
        ``takes_job`` is false: an upload of an input file, say, bills nothing."""
        target = url if url.startswith(("http://", "https://")) else self.api_base + url
        try:
            response = await self.send(method, target, **kwargs)
        except (httpx.ConnectTimeout, httpx.PoolTimeout) as exc:  # nothing was sent
            raise UpstreamError(
                f"Could not reach {self.provider} at {httpx.URL(target).host} in time.") from exc
        except httpx.TimeoutException as exc:
            raise UpstreamTimeoutError(
                f"{self.provider} did not answer within {self.timeout:g} s.") from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(
                f"Could not reach {self.provider} at {httpx.URL(target).host} "
                f"({type(exc).__name__}).") from exc
        _record(response.status_code, takes_job)
        if response.status_code >= 400:
            raise self.upstream_error(response)
        return response

    def upstream_error(self, response: httpx.Response) -> RetouchError:
        """Map an upstream error answer onto retouch's envelope; keys are never echoed."""
        status, detail = response.status_code, _detail(response)
        if status in (401, 403):
            return UpstreamError(
                f"{self.provider} rejected the API key in {self.api_key_env} (HTTP {status}); "
                f"check {self.api_key_env}.", code="upstream_auth_failed")
        if status == 429:
            retry_after = response.headers.get("retry-after")
            return RateLimitError(
                f"{self.provider} is rate limiting requests{': ' + detail if detail else ''}.",
                headers={"retry-after": retry_after} if retry_after else None)
        if status in (400, 422):
            return InvalidRequestError(f"{self.provider} refused the request: {detail or status}.",
                                       code="upstream_rejected")
        if status in (408, 504):
            return UpstreamTimeoutError(f"{self.provider} timed out (HTTP {status}).")
        return UpstreamError(f"{self.provider} failed (HTTP {status}){': ' + detail if detail else ''}.")

    def content_blocked(self, reason: str) -> ContentPolicyError:
        return ContentPolicyError(f"{self.provider} blocked this request on content grounds: {reason}",
                                  param="prompt")

    # -- inputs -------------------------------------------------------------------------

    def links_for(self, job: EditJob) -> InputLinks | None:
        """The job's signed-link lender, when this provider may be sent links."""
        return job.links if self.accepts_image_links and self.image_transport == "auto" else None

    async def image_references(self, job: EditJob, payloads: list[Payload]) -> list[str]:
        """How each image appears in the request: a signed link to our storage when the job
        may lend links and this provider fetches URLs, otherwise ``inline_reference``."""
        links = self.links_for(job)
        if links is None:
            return [await self.inline_reference(payload) for payload in payloads]
        return [await links.link(payload) for payload in payloads]

    async def inline_reference(self, payload: Payload) -> str:
        """An image carried in the request itself: a data URL unless the provider wants
        something else (bare base64, an upload of its own)."""
        return await anyio.to_thread.run_sync(data_url, payload)  # megabytes of base64

    # -- results ------------------------------------------------------------------------

    async def fetch_result(self, url: str) -> bytes:
        """Download a result image the provider links to, only from its own hosts, through
        the SSRF-safe fetcher: a hostile answer cannot make us fetch anything else."""
        host = (httpx.URL(url).host or "").lower()
        allowed = self._result_hosts()
        if not any(host == h or host.endswith("." + h) for h in allowed):
            raise UpstreamError(f"{self.provider} returned a result on an unexpected host ({host}).")
        if self._fetcher is None:
            self._fetcher = UrlFetcher(FetchPolicy(
                max_bytes=64 * 1024 * 1024, total_timeout=self.timeout, allowed_hosts=frozenset(allowed)))
        try:
            return (await self._fetcher.fetch(url, param="result")).data
        except RetouchError as exc:
            raise UpstreamError(f"Could not download the result from {self.provider}: {exc.message}") from exc

    def _result_hosts(self) -> set[str]:
        # The configured base (a proxy, a test server) may serve results too.
        return set(self.result_hosts) | {(httpx.URL(self.api_base).host or "").lower()} - {""}


def refuse_two_shapes(size: tuple[int, int] | None, aspect_ratio: str | None) -> None:
    """``size`` and an ``aspect_ratio`` option both set the output's shape: a 400."""
    if size and aspect_ratio:
        raise InvalidRequestError(
            f"size={size[0]}x{size[1]} and aspect_ratio={aspect_ratio!r} both set the shape of "
            "the image; send one of them.", param="aspect_ratio")


def unused_quality(job: EditJob) -> list[str]:
    """``quality`` (unless auto), for providers that have no such knob: dropped, cosmetic."""
    return ["quality"] if job.quality not in (None, "auto") else []


def closest_ratio(width: int, height: int, choices: tuple[str, ...]) -> str:
    """The ``"W:H"`` of ``choices`` closest to width:height, compared on a log scale (so
    2:1 is as far from 1:1 as 1:2 is): providers take an aspect ratio, not pixels."""
    wanted = math.log(width / height)

    def distance(ratio: str) -> float:
        w, h = ratio.split(":")
        return abs(math.log(int(w) / int(h)) - wanted)

    return min(choices, key=distance)


_RESULT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


def sniff_content_type(data: bytes) -> str | None:
    """PNG, JPEG or WebP by magic bytes (what results may be); None for anything else."""
    return _RESULT_TYPES.get(sniff_format(data[:16]) or "")


def _record(status: int, takes_job: bool) -> None:
    attempt = CURRENT_ATTEMPT.get()
    if attempt is not None:
        attempt.status = status
        attempt.accepted = attempt.accepted or (takes_job and 200 <= status < 300)


def _detail(response: httpx.Response) -> str:
    """The upstream's own error message, if it sent one, trimmed."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300].strip()
    if isinstance(body, dict):
        error = body.get("error", body.get("detail", body.get("message", "")))
        if isinstance(error, dict):
            error = error.get("message", "")
        if isinstance(error, list):  # FastAPI-style validation errors: [{loc, msg}, …]
            error = "; ".join(_validation_message(item) for item in error)
        return str(error)[:300]
    return ""


def _validation_message(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    where = ".".join(str(part) for part in item.get("loc", [])[1:]) or ""
    return f"{where}: {item.get('msg', '')}" if where else str(item.get("msg", ""))
