"""CPU work off the event loop, when it is big enough to be worth a thread hop.

A hop to a worker thread and back costs tens of microseconds and two trips through the
event loop; parsing a 5 kB answer costs less. Megabytes of JSON or base64 would stall
every other request, so those go to a thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio

T = TypeVar("T")

SMALL_WORK_BYTES = 256 * 1024


async def run_sized(size: int, func: Callable[..., T], *args: object,
                    limiter: anyio.CapacityLimiter | None = None) -> T:
    """``func(*args)``, inline when it handles at most ``SMALL_WORK_BYTES`` bytes, else in
    a worker thread (under ``limiter`` when given)."""
    if size <= SMALL_WORK_BYTES:
        return func(*args)
    return await anyio.to_thread.run_sync(func, *args, limiter=limiter)
