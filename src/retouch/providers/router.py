"""``router``: one public model id served by several deployments, with fallbacks.

Declared in ``models.yaml`` with ``deployments:`` instead of ``provider:``::

    - id: flux-kontext-pro
      routing: weighted          # weighted (default) | least-busy | lowest-latency
      deployments:               # each one built like a single-provider entry, plus
        - {provider: bfl, model: flux-kontext-pro, price_per_image: 0.04}
        - {provider: fal, model: fal-ai/flux-pro/kontext, weight: 2, max_concurrency: 4}
      fallbacks: [qwen-image-edit-plus]   # other public ids, tried in order
      retries: 2                 # extra attempts after the first

Per deployment: ``weight`` (1), ``max_concurrency`` (unlimited; jobs wait for a slot),
``cooldown_s`` (30) and ``allowed_fails`` (3): after that many failures in a row the
deployment rests for ``cooldown_s``, then is tried again (one more failure rests it again,
a success clears the count). ``retry_base_delay_s`` (0.5) and ``retry_max_delay_s`` (8)
shape the back-off between attempts. A deployment without ``price_per_image`` is charged at
the entry's own ``price_per_image``, if any.

The one rule that keeps work from being lost or billed twice: a job is tried again — on
the next deployment, wrapping around, then on the fallbacks — only when the failure is
the provider's (429, 5xx, a timeout, no connection) *and* the provider never accepted the
job (no 2xx answer in that attempt, see ``hosted.Attempt``). A client error (400, 401,
403, 404, 422, a content block) is raised at once; so is any failure after acceptance.
Health counts live in this process only: another replica learns them on its own.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import anyio
from pydantic import BaseModel, ConfigDict

from retouch.errors import (
    RateLimitError,
    RetouchError,
    UpstreamError,
    UpstreamTimeoutError,
)
from retouch.providers.base import Availability, EditJob, EditModel, EditResult
from retouch.providers.hosted import CURRENT_ATTEMPT, Attempt
from retouch.providers.registry import ConfigError, build_model

log = logging.getLogger("retouch.router")

STRATEGIES = ("weighted", "least-busy", "lowest-latency")
CLIENT_STATUSES = frozenset({400, 401, 403, 404, 422})
ROUTING_KEYS = {"weight", "max_concurrency", "cooldown_s", "allowed_fails"}
LATENCY_SMOOTHING = 0.3  # weight of the newest sample in the latency average


@dataclass(eq=False)
class Deployment:
    """One backend behind a routed id, and what this process knows of its health."""

    model: EditModel
    weight: float = 1.0
    max_concurrency: int | None = None
    cooldown_s: float = 30.0
    allowed_fails: int = 3
    in_flight: int = 0
    fails: int = 0
    resting_until: float = 0.0
    latency_s: float | None = None
    _limiter: anyio.CapacityLimiter | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        upstream = getattr(self.model, "upstream_model", self.model.id)
        return f"{self.model.provider}:{upstream}"

    def ready(self, now: float) -> bool:
        return now >= self.resting_until and self.model.availability().available

    def succeeded(self, elapsed_s: float) -> None:
        self.fails = 0
        previous = self.latency_s
        self.latency_s = elapsed_s if previous is None else (
            LATENCY_SMOOTHING * elapsed_s + (1 - LATENCY_SMOOTHING) * previous)

    def failed(self, now: float) -> None:
        self.fails += 1
        if self.cooldown_s > 0 and self.fails >= self.allowed_fails:
            self.resting_until = now + self.cooldown_s
            log.warning("deployment %s failed %d times in a row; resting %g s",
                        self.name, self.fails, self.cooldown_s)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of ``max_concurrency`` places (waiting for one) for the call."""
        self.in_flight += 1
        try:
            if self.max_concurrency is None:
                yield
                return
            if self._limiter is None:  # made inside the event loop
                self._limiter = anyio.CapacityLimiter(self.max_concurrency)
            async with self._limiter:
                yield
        finally:
            self.in_flight -= 1


def weighted_order(deployments: list[Deployment], rng: random.Random) -> list[Deployment]:
    """A shuffle where each place goes to a deployment with chance ∝ its weight, without
    replacement (Efraimidis–Spirakis: sort by u^(1/w))."""
    return sorted(deployments, key=lambda d: rng.random() ** (1.0 / d.weight), reverse=True)


def order_deployments(deployments: list[Deployment], routing: str, rng: random.Random) -> list[Deployment]:
    """The order to try ``deployments`` in; ties fall to the weighted shuffle."""
    shuffled = weighted_order(deployments, rng)
    if routing == "least-busy":
        return sorted(shuffled, key=lambda d: d.in_flight)
    if routing == "lowest-latency":  # untried deployments first, to learn their latency
        return sorted(shuffled, key=lambda d: (d.latency_s is not None, d.latency_s or 0.0))
    return shuffled


def retryable(error: RetouchError, attempt: Attempt) -> bool:
    """The provider's fault, and it never took the job: safe to send elsewhere."""
    if attempt.accepted:
        return False
    if isinstance(error, UpstreamTimeoutError):
        # The request was sent and not answered: the provider may be making (and billing)
        # the image. A timeout before sending is a connection error, retried below.
        return False
    if isinstance(error, RateLimitError):
        return True
    return (isinstance(error, UpstreamError) and attempt.status not in CLIENT_STATUSES
            and error.code != "upstream_auth_failed")


def fits(model: EditModel, job: EditJob) -> bool:
    """Whether a fallback can take ``job`` as it stands (the core checked the router's flags)."""
    count = len(job.images)
    mode_ok = (model.supports_edits and model.min_input_images <= count <= model.max_input_images
               if count else model.supports_generation)
    return (mode_ok and (job.mask is None or model.supports_mask) and job.n <= model.max_n
            and job.output_format in model.output_formats and model.availability().available)


class Exhausted(Exception):
    """Every attempt failed retryably; ``error`` is the last failure."""

    def __init__(self, error: RetouchError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass
class RoutedOptions:
    """The request's own fields, and each deployment's validated view of them."""

    raw: dict[str, Any]
    parsed: dict[int, BaseModel]


class AnyOptions(BaseModel):
    model_config = ConfigDict(extra="allow")


class RoutedEditModel(EditModel):
    """A public id whose jobs go to the best deployment now, then to fallbacks."""

    provider: ClassVar[str] = "router"
    Options = AnyOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deployments = [self._deployment(item) for item in self.config.get("deployments") or []]
        if not self.deployments:
            raise ConfigError(f"{self.id}: 'deployments' must list at least one deployment")
        # The directory names the providers behind the id ("bfl+fal"), not "router".
        self.provider = "+".join(dict.fromkeys(d.model.provider for d in self.deployments))
        self.routing = str(self.config.get("routing") or "weighted")
        if self.routing not in STRATEGIES:
            raise ConfigError(f"{self.id}: routing {self.routing!r} is unknown; choose one of "
                              f"{', '.join(STRATEGIES)}")
        self.retries = int(self.config.get("retries", 2))
        self.base_delay_s = float(self.config.get("retry_base_delay_s", 0.5))
        self.max_delay_s = float(self.config.get("retry_max_delay_s", 8.0))
        self.fallback_ids = [str(name) for name in self.config.get("fallbacks") or []]
        self.fallbacks: list[EditModel] = []
        self.rng = random.Random()
        self.clock: Callable[[], float] = time.monotonic
        self._share_capabilities()
        if self.price_per_image is None:
            # Its list price: what its deployments charge, the highest when they differ
            # (budgets estimate with it; each image is charged at its deployment's price).
            prices = [d.model.price_per_image for d in self.deployments]
            self.price_per_image = max(prices) if None not in prices else None

    def _deployment(self, item: Any) -> Deployment:
        if isinstance(item, Deployment):  # tests and code may hand over ready ones
            return item
        if not isinstance(item, dict) or not item.get("provider"):
            raise ConfigError(f"{self.id}: each deployment needs a 'provider': {item!r}")
        entry = {k: v for k, v in item.items() if k not in ROUTING_KEYS}
        deployment = Deployment(
            build_model({**entry, "id": self.id}),
            weight=float(item.get("weight", 1)),
            max_concurrency=None if item.get("max_concurrency") is None else int(item["max_concurrency"]),
            cooldown_s=float(item.get("cooldown_s", 30)),
            allowed_fails=int(item.get("allowed_fails", 3)))
        if deployment.weight <= 0 or (deployment.max_concurrency or 1) < 1:
            raise ConfigError(f"{self.id}: deployment {deployment.name} needs weight > 0 and "
                              "max_concurrency ≥ 1")
        return deployment

    def _share_capabilities(self) -> None:
        """Flags every deployment honours, so the core's checks hold wherever a job goes."""
        models = [d.model for d in self.deployments]
        self.max_input_images = min(m.max_input_images for m in models)
        self.min_input_images = max(m.min_input_images for m in models)
        self.max_n = min(m.max_n for m in models)
        self.supports_mask = all(m.supports_mask for m in models)
        self.supports_generation = all(m.supports_generation for m in models)
        self.supports_edits = all(m.supports_edits for m in models)
        self.deterministic = all(m.deterministic for m in models)
        self.output_formats = tuple(f for f in models[0].output_formats
                                    if all(f in m.output_formats for m in models))

    def bind(self, registry: Any) -> None:
        """Resolve fallback ids once the registry holds every model."""
        known = {name: m for m in registry.models() for name in [m.id, *m.aliases]}
        unusable = [name for name in self.fallback_ids if known.get(name, self) is self]
        if unusable:
            raise ConfigError(f"{self.id}: fallbacks {', '.join(map(repr, unusable))} are not other "
                              "models in the catalogue; name ids from `retouch models`")
        self.fallbacks = [known[name] for name in self.fallback_ids]
        for deployment in self.deployments:  # local models behind a route share the runtime too
            inner = getattr(deployment.model, "bind", None)
            if inner is not None:
                inner(registry)

    def availability(self) -> Availability:
        if len(self.deployments) == 1:
            return self.deployments[0].model.availability()
        states = [(d, d.model.availability()) for d in self.deployments]
        if any(state.available for _, state in states):
            return Availability(True)
        return Availability(
            False,
            reason="no deployment is available (" + "; ".join(
                f"{d.name}: {s.reason}" for d, s in states) + ")",
            fix="; ".join(dict.fromkeys(s.fix for _, s in states if s.fix)))

    def parse_options(self, fields: dict[str, Any]) -> RoutedOptions:
        """Each deployment validates the fields now, so a bad one is a 400 before any work."""
        return RoutedOptions(dict(fields), {id(d): d.model.parse_options(fields) for d in self.deployments})

    async def aclose(self) -> None:
        for deployment in self.deployments:
            await deployment.model.aclose()

    # -- one job ------------------------------------------------------------------------

    async def edit(self, job: EditJob) -> EditResult:
        try:
            return await self.route(job)
        except Exhausted as exhausted:
            last = exhausted.error
        raw = job.options.raw if isinstance(job.options, RoutedOptions) else {}
        for fallback in self.fallbacks:
            if not fits(fallback, job):
                log.info("%s: fallback %s cannot take this job; skipped", self.id, fallback.id)
                continue
            log.warning("%s: every deployment failed (%s); falling back to %s",
                        self.id, last.message, fallback.id)
            try:
                options = fallback.parse_options(raw)
            except RetouchError:
                log.info("%s: fallback %s does not take these options; skipped", self.id, fallback.id)
                continue
            try:
                return await run_fallback(fallback, replace(job, options=options))
            except Exhausted as exhausted:
                last = exhausted.error
        raise last

    async def route(self, job: EditJob) -> EditResult:
        """Try the deployments in routing order, ``retries`` more times; no fallbacks."""
        order = order_deployments([d for d in self.deployments if d.ready(self.clock())],
                                  self.routing, self.rng)
        last: RetouchError = self._resting_error()
        previous: Deployment | None = None
        for number in range(self.retries + 1):
            deployment = self._next(order, number)
            if deployment is None:
                break
            if number:
                delay = self._delay(number, last, deployment is previous)
                if delay is None:
                    break
                await anyio.sleep(delay)
            try:
                return await self._run(deployment, job)
            except Exhausted as exhausted:
                last, previous = exhausted.error, deployment
        raise Exhausted(last)

    def _next(self, order: list[Deployment], number: int) -> Deployment | None:
        """The deployment for attempt ``number``, wrapping around, skipping resting ones."""
        for step in range(len(order)):
            deployment = order[(number + step) % len(order)]
            if deployment.ready(self.clock()):
                return deployment
        return None

    def _delay(self, number: int, error: RetouchError, same: bool) -> float | None:
        """Back-off before attempt ``number``; None when the deployment asked us to wait
        longer than ``retry_max_delay_s`` (retrying sooner would only earn another 429,
        so the client gets the provider's ``retry-after`` now)."""
        delay = self.base_delay_s * 2 ** (number - 1)
        if same:  # a retry-after speaks for the deployment that sent it
            asked = _seconds(error.headers.get("retry-after"))
            if asked > self.max_delay_s:
                return None
            delay = max(delay, asked)
        return min(self.max_delay_s, delay)

    async def _run(self, deployment: Deployment, job: EditJob) -> EditResult:
        """One attempt; a retryable failure becomes ``Exhausted``, others propagate."""
        attempt = Attempt()
        token = CURRENT_ATTEMPT.set(attempt)
        try:
            async with deployment.slot():
                started = self.clock()
                result = await deployment.model.edit(self._job_for(deployment, job))
                deployment.succeeded(self.clock() - started)
                result.extra["upstream_ms"] = 1e3 * (self.clock() - started)
        except RetouchError as exc:
            safe = retryable(exc, attempt)
            if safe or (attempt.accepted and exc.status >= 500):
                deployment.failed(self.clock())
            log.warning("%s: deployment %s failed (%s)%s", self.id, deployment.name, exc.message,
                        "" if safe else "; final")
            if safe:
                raise Exhausted(exc) from exc
            raise
        finally:
            CURRENT_ATTEMPT.reset(token)
        price = deployment.model.price_per_image
        return served(result, self.id, self.price_per_image if price is None else price)

    def _job_for(self, deployment: Deployment, job: EditJob) -> EditJob:
        if isinstance(job.options, RoutedOptions):
            return replace(job, options=job.options.parsed[id(deployment)])
        return job

    def _resting_error(self) -> RetouchError:
        soonest = min(d.resting_until for d in self.deployments) - self.clock()
        wait = max(1, int(soonest + 0.999))
        return UpstreamError(
            f"Every deployment of {self.id} is resting after repeated failures; try again in "
            f"{wait} s.", headers={"retry-after": str(wait)})


async def run_fallback(model: EditModel, job: EditJob) -> EditResult:
    """A fallback with its own routing (no further fallbacks), or a plain model tried once."""
    if isinstance(model, RoutedEditModel):
        return await model.route(job)
    attempt = Attempt()
    token = CURRENT_ATTEMPT.set(attempt)
    try:
        result = await model.edit(job)
    except RetouchError as exc:
        if retryable(exc, attempt):
            raise Exhausted(exc) from exc
        raise
    finally:
        CURRENT_ATTEMPT.reset(token)
    return served(result, model.id, model.price_per_image)


def served(result: EditResult, model_id: str, price: float | None) -> EditResult:
    result.extra |= {"served_by": model_id, "price_per_image": price}
    return result


def _seconds(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:  # an HTTP date: not worth parsing for a capped wait
        return 0.0
