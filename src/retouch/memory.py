"""Memory for image-sized allocations: reuse it while busy, give it back when idle.

Decoding a 1024² image allocates several megabytes per request. By default glibc maps
such blocks fresh each time (about 1,000 page faults per request, ~20% of a simple
edit's CPU in the server) — ``keep_large_blocks`` makes it reuse freed heap instead.
Kept heap would then sit hundreds of MB above idle after a burst of large uploads, so
``TrimMemoryWhenIdle`` calls ``malloc_trim(0)`` once no request has run for a second.
Both are glibc-only and do nothing elsewhere (musl, macOS).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from collections.abc import Callable


_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def _glibc_function(name: str) -> Callable[..., int] | None:
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):
        return None


def keep_large_blocks(threshold: int = 64 * 1024 * 1024) -> bool:
    """Serve blocks below ``threshold`` from the heap and stop automatic trimming (the
    idle trim takes over). Process-wide: call once, from the server's entry point."""
    mallopt = _glibc_function("mallopt")
    if mallopt is None or _glibc_function("malloc_trim") is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, 4 * threshold))


class TrimMemoryWhenIdle:
    """ASGI middleware: trims the heap once no HTTP request has run for ``delay`` seconds."""

    def __init__(self, app, delay: float = 1.0) -> None:
        self.app = app
        self.delay = delay
        self.in_flight = 0
        self._idle_since = 0  # bumped on every transition to idle; stale timers skip
        self._trim = _glibc_function("malloc_trim")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or self._trim is None:
            await self.app(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle_since += 1
                loop = asyncio.get_running_loop()
                loop.call_later(self.delay, self._trim_if_still_idle, loop, self._idle_since)

    def _trim_if_still_idle(self, loop: asyncio.AbstractEventLoop, idle_since: int) -> None:
        if self.in_flight == 0 and idle_since == self._idle_since:
            loop.run_in_executor(None, self._trim, 0)
