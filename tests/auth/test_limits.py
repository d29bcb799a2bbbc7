"""Rate limits, image quotas and budgets of managed keys, on real storages: memory, a real
Redis server, and the usage log on a real SQLite database."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools

import pytest

from retouch.auth.keys import ANONYMOUS, Principal
from retouch.auth.limits import Quotas, UsageLogSpend, duration_header
from retouch.config import Settings
from retouch.db import Database
from retouch.db.keys import KeyRecord, KeyStore
from retouch.db.usage import UsageEntry, UsageLog
from retouch.errors import (
    InsufficientBalanceError,
    RateLimitError,
    ServiceUnavailableError,
)
from tests.backing import free_port

pytestmark = pytest.mark.anyio

# Counters in the session's Redis outlive a test: every key made here gets an id of its own.
_ids = itertools.count(1_000_000)


def key(**limits) -> Principal:
    """A managed key with these limits and an id no other test uses."""
    record = KeyRecord(id=next(_ids), name="team", prefix="rt-abc1234", allowed_models=None,
                       rpm=limits.get("rpm"), images_per_day=limits.get("images_per_day"),
                       monthly_budget_usd=limits.get("monthly_budget_usd"),
                       created_at=dt.datetime.now(dt.UTC), last_used_at=None, revoked_at=None)
    return Principal(key_id=record.prefix, record=record)


def at(*when: int) -> float:
    """A UTC moment, as a clock reads it."""
    return dt.datetime(*when, tzinfo=dt.UTC).timestamp()


@pytest.fixture(params=["memory", "redis"])
def storage_uri(request) -> str:
    return "memory://" if request.param == "memory" else request.getfixturevalue("redis_url")


@pytest.fixture
async def open_quotas():
    """Make ``Quotas``; each is closed after the test."""
    made: list[Quotas] = []

    def make(uri: str = "memory://", **options) -> Quotas:
        made.append(Quotas(uri, **options))
        return made[-1]

    yield make
    for quotas in made:
        await quotas.aclose()


@pytest.fixture
async def usage(tmp_path):
    """A real usage log on a new SQLite database, and the store of its keys."""
    database = Database(Settings(_env_file=None, data_dir=tmp_path).database)
    await database.upgrade()
    log = UsageLog(database)
    yield log, KeyStore(database)
    await log.close()
    await database.aclose()


async def spend_row(log: UsageLog, principal: Principal, cost: float, created_at: dt.datetime) -> None:
    await log.record(UsageEntry(request_id=f"r{next(_ids)}", key_label=principal.key_id, endpoint="edits",
                                status=200, latency_ms=1.0, key_id=principal.record.id, n=1, images_out=1,
                                cost_usd=cost, created_at=created_at))


async def budget_key(store: KeyStore, budget: float) -> Principal:
    record, _ = await store.create("team", monthly_budget_usd=budget)
    return Principal(key_id=record.prefix, record=record)


# -- requests per minute -----------------------------------------------------------------


async def test_rpm_admits_exactly_n_then_429_with_headers(storage_uri, open_quotas):
    quotas, caller = open_quotas(storage_uri, clock=lambda: at(2025, 5, 14, 12, 0, 10)), key(rpm=3)
    answers = [await quotas.admit(caller) for _ in range(3)]
    assert [a["x-ratelimit-remaining-requests"] for a in answers] == ["2", "1", "0"]
    assert {a["x-ratelimit-limit-requests"] for a in answers} == {"3"}
    assert answers[0]["x-ratelimit-reset-requests"] == "50s"  # this minute's count rolls over
    with pytest.raises(RateLimitError) as refused:
        await quotas.admit(caller)
    error = refused.value
    assert error.status == 429
    # The next minute starts in 50 s; 20 s into it, the three weigh 2 and one more fits.
    assert error.headers["retry-after"] == "70"
    assert error.headers["x-ratelimit-remaining-requests"] == "0"
    assert error.headers["x-ratelimit-limit-requests"] == "3"
    assert "3 requests per minute" in error.message and "--rpm" in error.message
    assert f"Try again in {error.headers['retry-after']} s" in error.message


async def test_rpm_is_per_key(storage_uri, open_quotas):
    quotas, first, second = open_quotas(storage_uri), key(rpm=1), key(rpm=1)
    await quotas.admit(first)
    assert (await quotas.admit(second))["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(RateLimitError):
        await quotas.admit(first)


async def test_replicas_share_the_rate_limit_through_redis(redis_url):
    settings = Settings(_env_file=None, redis_url=redis_url)
    one = Quotas.from_settings(settings, None)
    two = Quotas.from_settings(settings, None)
    caller = key(rpm=3)
    try:
        await one.admit(caller)
        assert (await two.admit(caller))["x-ratelimit-remaining-requests"] == "1"
        await one.admit(caller)
        with pytest.raises(RateLimitError):
            await two.admit(caller)
    finally:
        await one.aclose()
        await two.aclose()


async def test_memory_quotas_are_per_process(open_quotas):
    one, two, caller = open_quotas(), open_quotas(), key(rpm=2)
    for _ in range(2):
        await one.admit(caller)
        await two.admit(caller)
    with pytest.raises(RateLimitError):
        await one.admit(caller)


async def test_rpm_of_zero_says_no_requests_at_all(open_quotas):
    with pytest.raises(RateLimitError) as refused:
        await open_quotas().admit(key(rpm=0))
    assert "may make no requests (rpm is 0)" in refused.value.message


# -- callers without limits -----------------------------------------------------------------


async def test_callers_without_limits_never_touch_storage(open_quotas):
    quotas = open_quotas(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    for caller in (ANONYMOUS, Principal(key_id="key-1234abcd"), key()):
        assert await quotas.admit(caller) == {}
        reservation = await quotas.reserve(caller, images=4, price_per_image=0.5)
        assert reservation.headers == {}
        await reservation.settle(4, 2.0)


async def test_a_limited_key_is_refused_with_503_while_redis_is_away(open_quotas):
    quotas = open_quotas(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    for limited in (lambda: quotas.admit(key(rpm=5)),
                    lambda: quotas.reserve(key(images_per_day=5), images=1, price_per_image=None)):
        with pytest.raises(ServiceUnavailableError) as refused:
            await limited()
        assert refused.value.status == 503 and refused.value.code == "limits_unavailable"
        assert "Redis" in refused.value.message


# -- images per day -------------------------------------------------------------------------


async def test_images_per_day_take_n_and_refuse_what_does_not_fit(storage_uri, open_quotas):
    quotas = open_quotas(storage_uri, clock=lambda: at(2025, 5, 14, 23, 59, 30))
    caller = key(images_per_day=5)
    first = await quotas.reserve(caller, images=3, price_per_image=None)
    assert first.headers == {"x-ratelimit-limit-images": "5", "x-ratelimit-remaining-images": "2",
                             "x-ratelimit-reset-images": "30s"}
    with pytest.raises(RateLimitError) as refused:
        await quotas.reserve(caller, images=3, price_per_image=None)
    error = refused.value
    assert error.status == 429 and error.headers["retry-after"] == "30"
    assert error.headers["x-ratelimit-remaining-images"] == "2"
    assert "5 images per day" in error.message and "2 are left" in error.message
    assert "--images-per-day" in error.message
    # The refused request took nothing: the two left are still there.
    last = await quotas.reserve(caller, images=2, price_per_image=None)
    assert last.headers["x-ratelimit-remaining-images"] == "0"


async def test_unused_images_are_given_back(storage_uri, open_quotas):
    quotas, caller = open_quotas(storage_uri), key(images_per_day=4)
    reservation = await quotas.reserve(caller, images=4, price_per_image=None)
    await reservation.settle(1, None)
    assert reservation.headers["x-ratelimit-remaining-images"] == "3"
    await reservation.settle(0, None)  # a second settle gives nothing more back
    again = await quotas.reserve(caller, images=3, price_per_image=None)
    assert again.headers["x-ratelimit-remaining-images"] == "0"
    with pytest.raises(RateLimitError):
        await quotas.reserve(caller, images=1, price_per_image=None)


async def test_cancel_gives_every_image_back(storage_uri, open_quotas):
    quotas, caller = open_quotas(storage_uri), key(images_per_day=4)
    await (await quotas.reserve(caller, images=4, price_per_image=None)).cancel()
    again = await quotas.reserve(caller, images=4, price_per_image=None)
    assert again.headers["x-ratelimit-remaining-images"] == "0"


async def test_a_new_utc_day_starts_from_zero(storage_uri, open_quotas):
    now = [at(2025, 5, 14, 23, 59, 59, 500_000)]
    quotas, caller = open_quotas(storage_uri, clock=lambda: now[0]), key(images_per_day=2)
    await quotas.reserve(caller, images=2, price_per_image=None)
    with pytest.raises(RateLimitError) as refused:
        await quotas.reserve(caller, images=1, price_per_image=None)
    assert refused.value.headers["retry-after"] == "1"
    assert refused.value.headers["x-ratelimit-reset-images"] == "500ms"
    now[0] = at(2025, 5, 15, 0, 0, 1)
    fresh = await quotas.reserve(caller, images=2, price_per_image=None)
    assert fresh.headers["x-ratelimit-remaining-images"] == "0"
    assert fresh.headers["x-ratelimit-reset-images"] == "23h59m59s"


async def test_more_images_than_a_whole_day_is_not_worth_retrying(open_quotas):
    quotas, caller = open_quotas(), key(images_per_day=5)
    with pytest.raises(RateLimitError) as refused:
        await quotas.reserve(caller, images=6, price_per_image=None)
    error = refused.value
    assert error.param == "n" and error.headers["x-should-retry"] == "false"
    assert "retry-after" not in error.headers
    assert "asks for 6 images" in error.message and "(5)" in error.message
    assert (await quotas.reserve(caller, images=5, price_per_image=None)).headers[
        "x-ratelimit-remaining-images"] == "0"


# -- monthly budget -------------------------------------------------------------------------


async def test_budget_counts_written_and_queued_spend_and_running_requests(usage, open_quotas):
    log, store = usage
    quotas = open_quotas(spend=UsageLogSpend(log), clock=lambda: at(2025, 5, 14, 12))
    caller = await budget_key(store, 1.00)
    await spend_row(log, caller, 0.70, dt.datetime(2025, 5, 2, tzinfo=dt.UTC))
    await log.flush()
    await spend_row(log, caller, 0.10, dt.datetime(2025, 5, 14, tzinfo=dt.UTC))  # queued, not written
    running = await quotas.reserve(caller, images=1, price_per_image=0.15)  # 0.95 of 1.00
    with pytest.raises(InsufficientBalanceError) as refused:
        await quotas.reserve(caller, images=2, price_per_image=0.05)
    error = refused.value
    assert error.status == 402 and error.code == "insufficient_balance"
    assert "Monthly budget reached" in error.message and "$1.00" in error.message
    assert "$0.95 spent since May 1" in error.message and "about $0.10" in error.message
    assert "resets on June 1" in error.message and "--monthly-budget" in error.message
    await running.cancel()  # the running request failed: its estimate no longer counts
    await quotas.reserve(caller, images=2, price_per_image=0.05)


async def test_spending_exactly_the_budget_passes(usage, open_quotas):
    log, store = usage
    caller = await budget_key(store, 0.3)
    await spend_row(log, caller, 0.1, dt.datetime.now(dt.UTC))
    await spend_row(log, caller, 0.1, dt.datetime.now(dt.UTC))
    quotas = open_quotas(spend=UsageLogSpend(log))
    await quotas.reserve(caller, images=1, price_per_image=0.1)
    with pytest.raises(InsufficientBalanceError):
        await quotas.reserve(caller, images=1, price_per_image=0.001)


async def test_last_months_spend_does_not_count(usage, open_quotas):
    log, store = usage
    caller = await budget_key(store, 1.00)
    await spend_row(log, caller, 5.00, dt.datetime(2025, 2, 28, 23, 59, 59, tzinfo=dt.UTC))
    await spend_row(log, caller, 0.50, dt.datetime(2025, 3, 1, 0, 0, 1, tzinfo=dt.UTC))
    await log.flush()
    quotas = open_quotas(spend=UsageLogSpend(log), clock=lambda: at(2025, 3, 1, 0, 0, 5))
    await quotas.reserve(caller, images=1, price_per_image=0.40)
    with pytest.raises(InsufficientBalanceError) as refused:
        await quotas.reserve(caller, images=1, price_per_image=0.20)
    assert "$0.90 spent since March 1" in refused.value.message
    assert "resets on April 1" in refused.value.message


async def test_concurrent_requests_cannot_both_pass_a_nearly_spent_budget(usage, open_quotas):
    log, store = usage
    caller = await budget_key(store, 1.00)
    await spend_row(log, caller, 0.80, dt.datetime.now(dt.UTC))
    await log.flush()
    quotas = open_quotas(spend=UsageLogSpend(log))
    outcomes = await asyncio.gather(*(quotas.reserve(caller, images=1, price_per_image=0.15)
                                      for _ in range(4)), return_exceptions=True)
    assert sum(isinstance(o, InsufficientBalanceError) for o in outcomes) == 3


async def test_settle_swaps_the_estimate_for_the_actual_cost(usage, open_quotas):
    log, store = usage
    caller = await budget_key(store, 1.00)
    quotas = open_quotas(spend=UsageLogSpend(log))
    reservation = await quotas.reserve(caller, images=2, price_per_image=0.30)
    await reservation.settle(1, 0.30)  # one image of two made
    await spend_row(log, caller, 0.30, dt.datetime.now(dt.UTC))  # as the request's row would be
    await quotas.reserve(caller, images=2, price_per_image=0.35)
    with pytest.raises(InsufficientBalanceError) as refused:
        await quotas.reserve(caller, images=1, price_per_image=0.01)
    assert "$1.00 spent" in refused.value.message


class FinishingDuringTheQuery:
    """Spend from the usage log, while another request settles as the database answers:
    the interleaving that a busy server produces now and then."""

    def __init__(self, log: UsageLog) -> None:
        self.log_spend = UsageLogSpend(log)
        self.finishing = None

    async def spent_this_month(self, key_id: int, since: dt.datetime) -> float:
        spent = await self.log_spend.spent_this_month(key_id, since)
        if self.finishing is not None:
            await self.finishing.settle(1, 0.50)
            self.finishing = None
        return spent


async def test_a_request_finishing_during_the_check_still_counts(usage, open_quotas):
    log, store = usage
    caller, spend = await budget_key(store, 1.00), FinishingDuringTheQuery(log)
    quotas = open_quotas(spend=spend)
    spend.finishing = await quotas.reserve(caller, images=1, price_per_image=0.50)
    # Its row is not in the log yet and its estimate no longer runs; its cost still counts.
    with pytest.raises(InsufficientBalanceError) as refused:
        await quotas.reserve(caller, images=1, price_per_image=0.60)
    assert "$0.50 spent" in refused.value.message


async def test_an_unknown_price_runs_only_while_budget_is_left(usage, open_quotas):
    log, store = usage
    caller = await budget_key(store, 1.00)
    quotas = open_quotas(spend=UsageLogSpend(log))
    await quotas.reserve(caller, images=1, price_per_image=None)
    await spend_row(log, caller, 1.00, dt.datetime.now(dt.UTC))
    with pytest.raises(InsufficientBalanceError) as refused:
        await quotas.reserve(caller, images=1, price_per_image=None)
    assert "price is unknown" in refused.value.message


# -- headers -------------------------------------------------------------------------------


@pytest.mark.parametrize(("seconds", "written"), [
    (0.02, "20ms"), (0.9991, "1000ms"), (1, "1s"), (59.2, "1m0s"), (360, "6m0s"), (3723, "1h2m3s"), (0, "0s")])
def test_durations_are_written_as_openai_does(seconds, written):
    assert duration_header(seconds) == written


async def test_another_replicas_spend_shows_up_once_the_sum_is_read_again(usage, open_quotas):
    log, store = usage
    caller = await budget_key(store, 1.00)
    other_replica = UsageLog(log.database)  # same database, another process's log
    now = [0.0]
    spend = UsageLogSpend(log, refresh_s=1.0, clock=lambda: now[0])
    quotas = open_quotas(spend=spend)
    await (await quotas.reserve(caller, images=1, price_per_image=0.10)).settle(1, 0.10)
    await spend_row(log, caller, 0.10, dt.datetime.now(dt.UTC))  # that request's row
    await spend_row(other_replica, caller, 0.85, dt.datetime.now(dt.UTC))
    await other_replica.flush()
    await quotas.reserve(caller, images=1, price_per_image=0.10)  # the sum read at 0 s is still used
    now[0] = 1.0
    with pytest.raises(InsufficientBalanceError) as refused:
        await quotas.reserve(caller, images=1, price_per_image=0.10)
    assert "$1.05 spent" in refused.value.message  # 0.85 there + 0.10 settled + 0.10 running here
