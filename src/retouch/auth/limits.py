"""Rate limits, image quotas and spending caps of managed API keys.

A managed key (``Principal.record``) may carry three limits; static keys and anonymous
callers carry none, and a limit that is None costs nothing (no storage round trip):

- ``rpm``: requests per minute, a sliding window counter (``auth/window.py``: exactly N
  for a burst, one storage round trip a request), counted by ``Quotas.admit``. Over it:
  429 with ``retry-after``.
- ``images_per_day``: images per calendar day (UTC), taken by ``Quotas.reserve`` before a
  model runs and partly given back by ``Reservation.settle`` (a failed request costs no
  quota). Over it: 429, ``retry-after`` at the next midnight UTC.
- ``monthly_budget_usd``: spend per calendar month (UTC). Over it: 402
  ``insufficient_balance``, which retrying cannot cure before the 1st.

Counters live in the ``limits`` storage: memory (one process) or Redis
(``RETOUCH_REDIS_URL``), shared by every replica.

The images counter is a plain counter per key and UTC day, not one of the library's
windows: a window cannot give entries back, a counter can (``storage.incr`` with a
negative amount). Since the day is part of its key, a give-back lands on the day the
images were taken from, and a new day starts from zero whatever the counter's expiry.

Spend is the usage log's (the durable truth): the database's sum for the month, plus the
rows this process has recorded but not yet written, plus the reservations of this
process still running (their estimated cost), so concurrent requests in one process
cannot both pass a nearly spent budget. What finishes while the check reads the database
may be counted twice, never not at all. Replicas see each other's spend once the rows are
written (about 0.2 s after a request) and never see each other's running requests: with
several replicas a budget can be overrun by what runs at once on the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from limits.aio.storage import MemoryStorage, RedisStorage, Storage

from retouch.auth.keys import Principal
from retouch.auth.window import SlidingMinute
from retouch.db.keys import KeyRecord
from retouch.errors import (
    InsufficientBalanceError,
    RateLimitError,
    ServiceUnavailableError,
)

log = logging.getLogger("retouch.limits")

RateHeaders = dict[str, str]
DAY_S = 86_400
# A Redis that stops answering fails a limited request after this long instead of hanging it.
REDIS_TIMEOUT_S = 5.0
# Sums of float dollars are a hair off: spending exactly the budget must still pass.
TOLERANCE_USD = 1e-9


class SpendSource(Protocol):
    """Where spend comes from: what a key spent since ``since`` (UTC), in US dollars."""

    async def spent_this_month(self, key_id: int, since: dt.datetime) -> float: ...


@dataclass
class _Sum:
    """The database's sum for one key and month, and this process's recorded cost then."""

    spent: float
    recorded: float
    taken_at: float


class UsageLogSpend:
    """Spend from the usage log: the database's sum since ``since``, plus the rows this
    process recorded that are not written yet.

    The sum is read from the database at most every ``refresh_s`` seconds per key; in
    between, what this process records is added to it. Other replicas' spend therefore
    shows up within ``refresh_s`` (plus the log's batching), and a busy key costs one
    query a second, not one per request."""

    def __init__(self, usage_log, *, refresh_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.usage_log = usage_log
        self.refresh_s = refresh_s
        self._clock = clock
        self._sums: dict[tuple[int, dt.datetime], _Sum] = {}
        self._reading: dict[tuple[int, dt.datetime], asyncio.Lock] = {}

    async def spent_this_month(self, key_id: int, since: dt.datetime) -> float:
        known = self._sums.get((key_id, since))
        if known is None or self._clock() - known.taken_at >= self.refresh_s:
            known = await self._read(key_id, since)
        recorded, _ = self.usage_log.cost_in_process(key_id)
        return known.spent + (recorded - known.recorded)

    async def _read(self, key_id: int, since: dt.datetime) -> _Sum:
        """The database's sum, read once however many requests ask at the same moment."""
        async with self._reading.setdefault((key_id, since), asyncio.Lock()):
            known = self._sums.get((key_id, since))
            if known is not None and self._clock() - known.taken_at < self.refresh_s:
                return known  # another request read it while this one waited
            recorded_before, unwritten = self.usage_log.cost_in_process(key_id)
            written = sum(row.spend_usd for row in await self.usage_log.by_key(since, key_id))
            recorded_after, _ = self.usage_log.cost_in_process(key_id)
            # A row written while the sum ran is counted twice, and one recorded meanwhile once.
            spent = written + unwritten + (recorded_after - recorded_before)
            self._forget_other_months(since)
            known = self._sums[(key_id, since)] = _Sum(spent, recorded_after, self._clock())
            return known

    def _forget_other_months(self, since: dt.datetime) -> None:
        for stale in [k for k in self._sums if k[1] != since]:
            self._sums.pop(stale, None)
            self._reading.pop(stale, None)


class NoUsageLog:
    """The spend source of a server whose usage log is off: budgets cannot be kept."""

    async def spent_this_month(self, key_id: int, since: dt.datetime) -> float:
        raise ServiceUnavailableError(
            "This API key has a monthly budget, but the server keeps no usage log "
            "(RETOUCH_USAGE_LOG=false), so its spend is unknown. Fix: turn the usage log "
            "on, or lift the key's budget.", code="budget_unenforceable")


class Quotas:
    """The three limits of managed keys, over one ``limits`` storage: ``memory://`` (this
    process) or ``redis://host:port/db`` (shared by replicas). ``spend`` tells what keys
    spent (without one, only this process's running reservations count against budgets);
    ``clock`` gives the time that decides the UTC day and month."""

    def __init__(self, storage_uri: str = "memory://", *, spend: SpendSource | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.storage, self._pool = _open_storage(storage_uri)
        self._minutes = SlidingMinute(self.storage)
        self._spend = spend
        self._clock = clock
        self._in_flight: Counter[int] = Counter()  # estimated cost of unsettled reservations
        self._settled: Counter[int] = Counter()  # actual cost of settled ones, ever

    @classmethod
    def from_settings(cls, settings, usage_log) -> Quotas:
        """Redis when ``RETOUCH_REDIS_URL`` is set, else memory; spend from ``usage_log``
        (None: the log is off, and keys with a budget are refused rather than let through)."""
        spend = UsageLogSpend(usage_log) if usage_log is not None else NoUsageLog()
        return cls(settings.redis_url or "memory://", spend=spend)

    async def admit(self, principal: Principal) -> RateHeaders:
        """Count one request against the key's rpm (a sliding window: exactly N for a burst).
        Raises RateLimitError with retry-after and x-ratelimit-* headers when over.
        Returns the headers to put on the successful response (empty for keys without rpm)."""
        record = principal.record
        if record is None or record.rpm is None:
            return {}
        async with _reachable(self.storage):
            admission = await self._minutes.hit(_identity(record), record.rpm, self._clock())
        headers = _headers("requests", record.rpm, admission.remaining, admission.wait_s)
        if not admission.admitted:
            raise RateLimitError(_rpm_message(record, admission.wait_s),
                                 headers={"retry-after": _retry_after(admission.wait_s), **headers})
        return headers

    async def reserve(self, principal: Principal, *, images: int,
                      price_per_image: float | None) -> Reservation:
        """Before a model runs: take ``images`` from the key's images-per-day quota and
        check that spend this calendar month (UTC) + images × price stays within
        monthly_budget_usd (an unknown price runs only while some budget is left).
        Over images/day → RateLimitError 429 (retry-after: the next midnight UTC) with
        x-ratelimit-*-images headers; over budget → InsufficientBalanceError 402 naming
        the budget, what was spent, and how to raise it. Settle or cancel the reservation."""
        record = principal.record
        if record is None or (record.images_per_day is None and record.monthly_budget_usd is None):
            return Reservation(self, None, 0, 0.0, None, {})
        cost = 0.0
        if record.monthly_budget_usd is not None:
            estimate = images * price_per_image if price_per_image is not None else None
            await self._hold_budget(record, estimate)
            cost = estimate or 0.0
        try:
            counter, headers = None, {}
            if record.images_per_day is not None:
                async with _reachable(self.storage):
                    counter, headers = await self._take_images(record, images)
        except BaseException:
            self._finish(record.id, cost, 0.0)
            raise
        return Reservation(self, record, images, cost, counter, headers)

    async def aclose(self) -> None:
        """Close the connections to Redis, if any."""
        if self._pool is not None:
            await self._pool.aclose()

    # -- images per day ------------------------------------------------------------------

    async def _take_images(self, record: KeyRecord, images: int) -> tuple[str, RateHeaders]:
        now = self._clock()
        counter = f"images/{_identity(record)}/{_utc(now).date().isoformat()}"
        count = await self.storage.incr(counter, DAY_S, amount=images)
        limit, wait = record.images_per_day, _next_midnight(now) - now
        if count <= limit:
            return counter, _headers("images", limit, limit - count, wait)
        # The storage counts a refused request too: take it straight back.
        count = await self.storage.incr(counter, DAY_S, amount=-images)
        headers = _headers("images", limit, max(0, limit - count), wait)
        if images > limit:
            raise RateLimitError(_too_many_images_message(record, images), param="n",
                                 headers={**headers, "x-should-retry": "false"})
        raise RateLimitError(_images_message(record, images, limit - count, wait),
                             headers={"retry-after": _retry_after(wait), **headers})

    async def _give_back(self, counter: str, images: int) -> int:
        return await self.storage.incr(counter, DAY_S, amount=-images)

    # -- monthly budget ------------------------------------------------------------------

    async def _hold_budget(self, record: KeyRecord, estimate: float | None) -> None:
        since = _month_start(self._clock())
        spent = await self._spent(record.id, since)
        # No wait from here to the hold: for this process, checking and holding are one step.
        spent += self._in_flight[record.id]
        if _over_budget(spent, estimate, record.monthly_budget_usd):
            raise InsufficientBalanceError(_budget_message(record, spent, estimate, since))
        self._in_flight[record.id] += estimate or 0.0

    async def _spent(self, key_id: int, since: dt.datetime) -> float:
        if self._spend is None:
            return 0.0
        settled = self._settled[key_id]
        spent = await self._spend.spent_this_month(key_id, since)
        # A request settled during the query may not be in the log yet: count it here.
        return spent + self._settled[key_id] - settled

    def _finish(self, key_id: int, estimate: float, cost: float) -> None:
        self._in_flight[key_id] -= estimate
        if self._in_flight[key_id] <= 1e-12:
            del self._in_flight[key_id]
        self._settled[key_id] += cost


class Reservation:
    """What ``Quotas.reserve`` took for one request. Settle it, or cancel it, once: later
    calls do nothing. ``headers`` go on the response (x-ratelimit-*-images)."""

    def __init__(self, quotas: Quotas, record: KeyRecord | None, images: int, estimate: float,
                 counter: str | None, headers: RateHeaders) -> None:
        self._quotas, self._record, self._images = quotas, record, images
        self._estimate, self._counter = estimate, counter
        self.headers = headers
        self._done = record is None

    async def settle(self, images_out: int, cost_usd: float | None) -> None:
        """After the model ran: give back the images not produced (a failed request
        costs no quota), and note the spend."""
        if self._done:
            return
        self._done = True
        self._quotas._finish(self._record.id, self._estimate, cost_usd or 0.0)
        unused = self._images - images_out
        if self._counter is None or unused <= 0:
            return
        try:
            count = await self._quotas._give_back(self._counter, unused)
        except Exception:  # the images are made and paid for: failing the request now helps no one
            log.warning("could not give back %d images to key %s", unused, self._record.prefix, exc_info=True)
            return
        self.headers["x-ratelimit-remaining-images"] = str(max(0, self._record.images_per_day - count))

    async def cancel(self) -> None:
        """The request failed before producing anything: give everything back."""
        await self.settle(0, None)


def _over_budget(spent: float, estimate: float | None, budget: float) -> bool:
    """An unknown price (None) runs only while some budget is left."""
    if estimate is None:
        return spent >= budget - TOLERANCE_USD
    return spent + estimate > budget + TOLERANCE_USD


# -- storage ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _reachable(storage: Storage) -> AsyncIterator[None]:
    """Storage failures (Redis away) as a 503 that says so; a limited key is refused rather
    than let through unlimited."""
    try:
        yield
    except (ConnectionError, TimeoutError, OSError) as exc:
        raise _unavailable(storage, exc) from exc
    except Exception as exc:
        if type(exc).__module__.split(".")[0] != "redis":
            raise
        raise _unavailable(storage, exc) from exc


def _unavailable(storage: Storage, exc: Exception) -> ServiceUnavailableError:
    log.warning("rate-limit storage %s failed: %s", type(storage).__name__, exc)
    return ServiceUnavailableError(
        "Rate limits cannot be checked right now (the limits storage, Redis, does not answer), "
        "so this key's requests are paused; try again shortly.", code="limits_unavailable")


def _identity(record: KeyRecord) -> str:
    """A key's name in the shared storage: its id alone would collide between deployments
    (or test databases) sharing one Redis; its random visible prefix does not."""
    return f"{record.id}-{record.prefix}"


def _open_storage(uri: str) -> tuple[Storage, object | None]:
    """The ``limits`` async storage for ``memory://`` or ``redis[s]://…``, and the Redis
    connection pool we own (None for memory)."""
    scheme = urlsplit(uri).scheme
    if scheme == "memory":
        return MemoryStorage(), None
    if scheme not in ("redis", "rediss"):
        raise ValueError(f"RETOUCH_REDIS_URL must start with redis:// or rediss://, not {scheme}://")
    try:
        import redis.asyncio as aioredis
    except ImportError:
        raise ValueError("RETOUCH_REDIS_URL needs the redis package: pip install 'retouch[redis]'") from None
    pool = aioredis.ConnectionPool.from_url(uri, socket_connect_timeout=REDIS_TIMEOUT_S,
                                            socket_timeout=REDIS_TIMEOUT_S)
    # The redis-py client (coredis is the library's default), on a pool we can close.
    storage = RedisStorage(f"async+{uri}", implementation="redispy", connection_pool=pool,
                           key_prefix="retouch-limits")
    return storage, pool


# -- time ------------------------------------------------------------------------------


def _utc(timestamp: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC)


def _next_midnight(timestamp: float) -> float:
    day = _utc(timestamp).date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(), dt.UTC).timestamp()


def _month_start(timestamp: float) -> dt.datetime:
    return _utc(timestamp).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_month(start: dt.datetime) -> dt.datetime:
    return (start + dt.timedelta(days=32)).replace(day=1)


def duration_header(seconds: float) -> str:
    """A reset time as OpenAI writes one: ``20ms``, ``1s``, ``6m0s``, ``1h2m3s`` (rounded up)."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    hours, rest = divmod(math.ceil(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def _retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


def _headers(what: str, limit: int, remaining: int, reset_in: float) -> RateHeaders:
    return {f"x-ratelimit-limit-{what}": str(limit),
            f"x-ratelimit-remaining-{what}": str(max(0, remaining)),
            f"x-ratelimit-reset-{what}": duration_header(reset_in)}


# -- messages --------------------------------------------------------------------------


def _raise_hint(record: KeyRecord, option: str, field: str) -> str:
    return (f"ask an admin to raise it (`retouch keys update {record.prefix} {option} N`, "
            f"or PATCH /admin/keys/{record.prefix} with {field})")


def _rpm_message(record: KeyRecord, wait: float) -> str:
    hint = _raise_hint(record, "--rpm", "rpm")
    if record.rpm == 0:
        return f"API key {record.prefix}… may make no requests (rpm is 0); {hint}."
    return (f"Rate limit reached for API key {record.prefix}…: {record.rpm} requests per minute. "
            f"Try again in {_retry_after(wait)} s, or {hint}.")


def _images_message(record: KeyRecord, images: int, left: int, wait: float) -> str:
    return (f"Daily image quota reached for API key {record.prefix}…: {record.images_per_day} images "
            f"per day (UTC); this request asks for {images} and {max(0, left)} are left. The quota "
            f"resets at 00:00 UTC, in {duration_header(wait)}; ask for fewer images (n), or "
            f"{_raise_hint(record, '--images-per-day', 'images_per_day')}.")


def _too_many_images_message(record: KeyRecord, images: int) -> str:
    return (f"This request asks for {images} images, more than API key {record.prefix}… may make "
            f"in a whole day ({record.images_per_day}); lower n, or "
            f"{_raise_hint(record, '--images-per-day', 'images_per_day')}.")


def _budget_message(record: KeyRecord, spent: float, cost: float | None, since: dt.datetime) -> str:
    this = (f"this request would cost about {_usd(cost)}" if cost is not None
            else "this model's price is unknown, so it runs only while some budget is left")
    return (f"Monthly budget reached for API key {record.prefix}…: {_usd(record.monthly_budget_usd)} "
            f"per calendar month (UTC), {_usd(spent)} spent since {since:%B} 1 and {this}. "
            f"The budget resets on {_next_month(since):%B} 1 at 00:00 UTC; "
            f"{_raise_hint(record, '--monthly-budget', 'monthly_budget_usd')}.")


def _usd(amount: float) -> str:
    """Dollars with cents, and fractions of a cent when there are any: $3.00, $0.004."""
    whole, _, cents = f"{amount:,.4f}".rstrip("0").partition(".")
    return f"${whole}.{cents.ljust(2, '0')}"
