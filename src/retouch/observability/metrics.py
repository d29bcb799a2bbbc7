"""Prometheus metrics for ``GET /metrics``, kept in one registry per app.

    retouch_http_requests_total{method, route, status}              counter
    retouch_http_request_duration_seconds{method, route, status}    histogram
    retouch_http_requests_in_flight                                 gauge
    retouch_image_requests_total{model, provider, status}           counter
    retouch_image_request_duration_seconds{model, provider, status} histogram
    retouch_images_total{model, provider}                           counter (images produced)
    retouch_cost_usd_total{model, provider}                         counter (list price)
    retouch_upstream_errors_total{model, provider, code}            counter
    retouch_build_info{version}                                     gauge, always 1

``HttpMetricsMiddleware`` fills the HTTP series; the image series come from one call
per image request, ``Metrics.observe_edit``, made where the request's outcome is known.
Every label value comes from a bounded set (route templates, the catalogue's model ids,
HTTP statuses, error codes), never from what a client typed: a name that is not in the
catalogue is counted as model ``unknown``.

With ``retouch serve --workers N`` each worker is a process with its own counters;
``shared_across_workers`` switches prometheus-client to its multiprocess mode so that
whichever worker answers a scrape reports the sum over all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from typing import Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from retouch import __version__

# From a 5 ms built-in edit to a hosted model that takes minutes.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0,
                   60.0, 120.0, 300.0)
UNKNOWN = "unknown"
# errors.py gives these statuses to failures of the provider (UpstreamError, UpstreamTimeoutError).
UPSTREAM_STATUSES = frozenset({502, 504})
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


class CatalogueModel(Protocol):
    id: str
    aliases: list[str]
    provider: str


class Metrics:
    """The app's metrics. ``models``: the catalogue, so that any name or alias a request
    used is counted under the model's id and its provider."""

    def __init__(self, models: Iterable[CatalogueModel] = ()) -> None:
        self.registry = CollectorRegistry()
        self._models = {name: (model.id, model.provider)
                        for model in models for name in (model.id, *model.aliases)}
        self._http: dict[tuple[str, str, str], tuple] = {}  # label children, made once
        http = ["method", "route", "status"]
        image = ["model", "provider", "status"]
        self.http_requests = self._counter("retouch_http_requests", "HTTP requests answered.", http)
        self.http_duration = self._histogram("retouch_http_request_duration_seconds",
                                             "Time to answer an HTTP request, body included.", http)
        self.in_flight = Gauge("retouch_http_requests_in_flight", "HTTP requests being served now.",
                               registry=self.registry, multiprocess_mode="livesum")
        self.image_requests = self._counter("retouch_image_requests",
                                            "Image edit and generation requests.", image)
        self.image_duration = self._histogram("retouch_image_request_duration_seconds",
                                              "Time to serve an image request.", image)
        self.images = self._counter("retouch_images", "Images produced.", ["model", "provider"])
        self.cost = self._counter("retouch_cost_usd", "Cost of the images produced, in US dollars "
                                  "at the catalogue's price.", ["model", "provider"])
        self.upstream_errors = self._counter(
            "retouch_upstream_errors", "Image requests that failed because the provider did "
            "(an error answer, a timeout, no connection).", ["model", "provider", "code"])
        info = Gauge("retouch_build_info", "The running retouch version.", ["version"],
                     registry=self.registry, multiprocess_mode="max")
        info.labels(__version__).set(1)

    def observe_edit(self, model: str | None, *, status: int, seconds: float, images: int = 0,
                     cost: float | None = None, provider: str | None = None,
                     error: str | None = None) -> None:
        """Count one image request. ``model``: the id or alias it asked for or was served
        by (counted under the catalogue id; ``unknown`` when not in the catalogue);
        ``provider``: the backend that served it, when more precise than the model's;
        ``status``: the HTTP status answered; ``error``: the error code when it failed."""
        model_id, model_provider = self._models.get(model or "", (UNKNOWN, UNKNOWN))
        provider = provider or model_provider
        self.image_requests.labels(model_id, provider, str(status)).inc()
        self.image_duration.labels(model_id, provider, str(status)).observe(seconds)
        if images:
            self.images.labels(model_id, provider).inc(images)
        if cost:
            self.cost.labels(model_id, provider).inc(cost)
        if status in UPSTREAM_STATUSES:
            self.upstream_errors.labels(model_id, provider, error or "upstream_error").inc()

    def observe_http(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one HTTP request under its route template (``unmatched`` for no route)."""
        key = (method if method in _METHODS else "other", route, str(status))
        children = self._http.get(key)
        if children is None:
            children = self._http[key] = (self.http_requests.labels(*key), self.http_duration.labels(*key))
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its content type; summed over worker processes in
        prometheus-client's multiprocess mode."""
        if os.environ.get(MULTIPROCESS_ENV):
            from prometheus_client import multiprocess

            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)
            return generate_latest(merged), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def _counter(self, name: str, documentation: str, labels: list[str]) -> Counter:
        return Counter(name, documentation, labels, registry=self.registry)

    def _histogram(self, name: str, documentation: str, labels: list[str]) -> Histogram:
        return Histogram(name, documentation, labels, buckets=LATENCY_BUCKETS, registry=self.registry)


class HttpMetricsMiddleware:
    """ASGI middleware: in-flight gauge, and count and latency by method, route template
    and status. A request that raised before answering counts as 500 (the error handler
    answers it), or 499 when it was cancelled because the client went away."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_and_note(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_and_note)
        except asyncio.CancelledError:
            status = status or 499
            raise
        except Exception:
            status = status or 500
            raise
        finally:
            self.metrics.in_flight.dec()
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.observe_http(scope["method"], route, status or 500, time.perf_counter() - started)


@contextlib.contextmanager
def shared_across_workers(workers: int) -> Iterator[None]:
    """Around starting ``workers`` server processes: when there are several, and the
    operator has not chosen a directory, metrics go through prometheus-client's
    multiprocess mode in a fresh directory, removed afterwards. Must run before the
    workers start (they inherit the environment)."""
    if workers < 2 or os.environ.get(MULTIPROCESS_ENV):
        yield
        return
    directory = tempfile.mkdtemp(prefix="retouch-metrics-")
    os.environ[MULTIPROCESS_ENV] = directory
    try:
        yield
    finally:
        os.environ.pop(MULTIPROCESS_ENV, None)
        shutil.rmtree(directory, ignore_errors=True)
