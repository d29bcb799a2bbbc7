"""The pieces of the local runtime that need no torch: the fair device queue, the
pipeline cache under a budget, and size snapping."""

from __future__ import annotations

import asyncio

import pytest

from retouch.local.cache import DoesNotFitError, PipelineCache
from retouch.local.families import FAMILIES, snap
from retouch.local.queue import FairQueue

pytestmark = pytest.mark.anyio


async def test_the_device_is_taken_in_turns_by_caller():
    queue, order, release = FairQueue(), [], asyncio.Event()

    async def job(caller: str, name: str) -> None:
        async with queue.turn(caller):
            order.append(name)
            if name == "a1":
                await release.wait()  # holds the device while the others line up

    first = asyncio.create_task(job("alice", "a1"))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(job(caller, name)) for caller, name in
            [("alice", "a2"), ("alice", "a3"), ("bob", "b1"), ("carol", "c1"), ("bob", "b2")]]
    await asyncio.sleep(0.01)
    assert order == ["a1"] and queue.waiting == 5
    release.set()
    await asyncio.gather(first, *rest)
    assert order == ["a1", "a2", "b1", "c1", "a3", "b2"]  # alice's second job does not block bob


async def test_only_one_job_holds_the_device_at_a_time():
    queue, inside, most = FairQueue(), 0, 0

    async def job(caller: str) -> None:
        nonlocal inside, most
        async with queue.turn(caller):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.001)
            inside -= 1

    await asyncio.gather(*(job(f"c{i % 3}") for i in range(12)))
    assert most == 1 and queue.waiting == 0


async def test_a_cancelled_waiter_leaves_the_line_and_the_device_moves_on():
    queue, order, release = FairQueue(), [], asyncio.Event()

    async def job(caller: str) -> None:
        async with queue.turn(caller):
            order.append(caller)
            if caller == "first":
                await release.wait()

    holder = asyncio.create_task(job("first"))
    await asyncio.sleep(0)
    gone, after = asyncio.create_task(job("gone")), asyncio.create_task(job("after"))
    await asyncio.sleep(0.01)
    gone.cancel()
    release.set()
    await asyncio.gather(holder, after)
    assert order == ["first", "after"] and gone.cancelled()


async def test_the_least_recently_used_idle_pipeline_is_evicted_to_make_room():
    released = []
    cache = PipelineCache(100, release=released.append)

    async def use(key: str, size: int) -> None:
        async def load():
            return f"pipeline {key}"
        async with cache.using(key, load, estimate=size, measure=lambda _: size):
            pass

    await use("a", 40)
    await use("b", 40)
    await use("a", 40)  # a is now more recent than b
    await use("c", 40)  # 120 > 100: evict the least recently used, b
    assert cache.loaded == ["a", "c"] and released == ["pipeline b"] and cache.evictions == ["b"]
    assert cache.used_bytes == 80


async def test_a_pipeline_in_use_is_never_evicted():
    cache = PipelineCache(100)
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with cache.using("big", _loader("big"), estimate=70, measure=lambda _: 70):
            holding.set()
            await release.wait()

    task = asyncio.create_task(hold())
    await holding.wait()
    with pytest.raises(DoesNotFitError, match="in use"):
        async with cache.using("other", _loader("other"), estimate=50, measure=lambda _: 50):
            pass
    release.set()
    await task
    async with cache.using("other", _loader("other"), estimate=50, measure=lambda _: 50):
        pass
    assert cache.loaded == ["other"]


async def test_a_pipeline_larger_than_the_budget_is_refused_before_loading():
    cache, loads = PipelineCache(10), []

    async def load():
        loads.append(1)

    with pytest.raises(DoesNotFitError, match="more than the whole budget"):
        async with cache.using("huge", load, estimate=11, measure=lambda _: 11):
            pass
    assert loads == []


async def test_concurrent_first_uses_load_once():
    cache, loads = PipelineCache(), []

    async def load():
        loads.append(1)
        await asyncio.sleep(0.01)
        return "p"

    async def use():
        async with cache.using("k", load, estimate=0, measure=lambda _: 1) as pipeline:
            return pipeline

    assert await asyncio.gather(use(), use(), use()) == ["p", "p", "p"] and loads == [1]


def _loader(name: str):
    async def load():
        return name
    return load


@pytest.mark.parametrize(("size", "grid", "area", "snapped"), [
    ((1024, 768), 16, 1024 * 1024, (1024, 768)),
    ((1000, 750), 16, 1024 * 1024, (992, 736)),   # down to the grid, never up
    ((4000, 3000), 16, 1024 * 1024, (1168, 880)),  # within about 1 MP, aspect kept
    ((30, 20), 16, 1024 * 1024, (16, 16)),          # at least one grid step
    ((64, 64), 8, 64 * 64, (64, 64)),
])
def test_sizes_snap_to_the_grid_within_the_area(size, grid, area, snapped):
    assert snap(size, grid, area) == snapped
    width, height = snapped
    assert width % grid == 0 and height % grid == 0 and width * height <= max(area, grid * grid)


def test_every_family_has_a_partial_image_decoder():
    from retouch.local.previews import DECODERS

    assert set(DECODERS) == set(FAMILIES)
