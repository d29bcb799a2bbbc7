"""The sliding window counter behind requests per minute, over time, on a real storage."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from limits.aio.storage import MemoryStorage

from retouch.auth.window import SlidingMinute, seconds_until_room

pytestmark = pytest.mark.anyio
_keys = itertools.count()


def at(minute: int, second: float) -> float:
    return dt.datetime(2025, 5, 14, 12, minute, tzinfo=dt.UTC).timestamp() + second


@pytest.fixture
def window():
    return SlidingMinute(MemoryStorage())


async def outcomes(window: SlidingMinute, key: str, limit: int, now: float, count: int) -> list[bool]:
    return [(await window.hit(key, limit, now)).admitted for _ in range(count)]


async def test_a_burst_from_rest_gets_exactly_the_limit(window):
    key = f"k{next(_keys)}"
    assert await outcomes(window, key, 5, at(0, 30), 7) == [True] * 5 + [False] * 2


async def test_refused_requests_do_not_count(window):
    key = f"k{next(_keys)}"
    await outcomes(window, key, 2, at(0, 0), 10)  # 2 admitted, 8 refused
    # Next minute at 30 s: the previous minute weighs 2 × 0.5 = 1, so one more fits.
    assert await outcomes(window, key, 2, at(1, 30), 2) == [True, False]


async def test_the_previous_minute_fades_as_the_window_slides(window):
    key = f"k{next(_keys)}"
    assert await outcomes(window, key, 4, at(0, 50), 4) == [True] * 4
    assert await outcomes(window, key, 4, at(1, 0.5), 1) == [False]  # 4 × 0.99 + 1 > 4
    assert await outcomes(window, key, 4, at(1, 15), 2) == [True, False]  # 4 × 0.75 + 1 = 4
    assert await outcomes(window, key, 4, at(1, 45), 3) == [True, True, False]  # 4 × 0.25 + 1 + 2 = 4
    assert (await window.hit(key, 4, at(3, 0))).remaining == 3  # two minutes on: nothing left


async def test_remaining_and_wait_say_what_the_client_can_do(window):
    key = f"k{next(_keys)}"
    first = await window.hit(key, 3, at(0, 10))
    assert (first.admitted, first.remaining, first.wait_s) == (True, 2, 50)
    await window.hit(key, 3, at(0, 10))
    await window.hit(key, 3, at(0, 10))
    refused = await window.hit(key, 3, at(0, 10))
    assert (refused.admitted, refused.remaining, refused.wait_s) == (False, 0, 70)


@pytest.mark.parametrize(("previous", "current", "elapsed", "limit", "wait"), [
    (0, 3, 10, 3, 50 + 20),  # next minute, once the three weigh 2
    (6, 0, 0, 3, 40),        # 6 × (1 - 40/60) + 1 = 3: the previous minute fades enough
    (6, 1, 40, 3, 10),       # 6 × (1 - 50/60) + 1 + 1 = 3
    (6, 3, 30, 3, 30 + 20),  # this minute is full: wait for the next, then 3 × (1 - 20/60) + 1 = 3
    (0, 0, 10, 0, 50),       # a limit of 0: never room, say the minute's end
])
def test_seconds_until_room(previous, current, elapsed, limit, wait):
    assert seconds_until_room(previous, current, elapsed, limit) == pytest.approx(wait)
