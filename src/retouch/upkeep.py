"""Periodic upkeep in a server's lifespan: ``async with every(600, store.prune_expired):``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio

log = logging.getLogger("retouch.upkeep")


@asynccontextmanager
async def every(interval_s: float, chore: Callable[[], Awaitable[object]]) -> AsyncIterator[None]:
    """Run ``chore`` now and then every ``interval_s`` seconds while the body runs. A chore
    that fails is logged and tried again next time: upkeep never takes the server down."""

    async def repeat() -> None:
        while True:
            try:
                await chore()
            except Exception as exc:
                log.warning("upkeep %s failed (%s); next try in %.0f s",
                            getattr(chore, "__qualname__", chore), exc, interval_s)
            await anyio.sleep(interval_s)

    async with anyio.create_task_group() as group:
        group.start_soon(repeat)
        try:
            yield
        finally:
            group.cancel_scope.cancel()
