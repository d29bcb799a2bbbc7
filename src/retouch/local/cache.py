"""Loaded pipelines: loaded on first use, kept warm, evicted least recently used when a new
one would not fit the memory budget. A pipeline being used is never evicted.

Sizes are what the pipeline's weights take once loaded (parameters and buffers of its
modules); before a load, the model's declared ``memory_gb`` or, lacking it, the size of
its weight files on disk stands in for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("retouch.local")

Loader = Callable[[], Awaitable[Any]]


class DoesNotFitError(Exception):
    """A pipeline larger than the whole budget, or one that cannot fit beside those in use."""


@dataclass
class _Entry:
    pipeline: Any
    size: int
    users: int = 0
    last_used: float = field(default_factory=time.monotonic)


class PipelineCache:
    """Pipelines by key within ``budget_bytes`` (0: no budget)."""

    def __init__(self, budget_bytes: int = 0, *, release: Callable[[Any], None] | None = None) -> None:
        self.budget_bytes = budget_bytes
        self.release = release or (lambda pipeline: None)  # frees device memory after eviction
        self._entries: dict[str, _Entry] = {}
        self._loading: dict[str, asyncio.Lock] = {}
        self.evictions: list[str] = []  # keys evicted, oldest first (for the operator and tests)

    @property
    def loaded(self) -> list[str]:
        return list(self._entries)

    @property
    def used_bytes(self) -> int:
        return sum(entry.size for entry in self._entries.values())

    @asynccontextmanager
    async def using(self, key: str, load: Loader, *, estimate: int,
                    measure: Callable[[Any], int]) -> AsyncIterator[Any]:
        """The pipeline for ``key`` (loaded if need be), held for the body."""
        entry = await self._get(key, load, estimate, measure)
        entry.users += 1
        try:
            yield entry.pipeline
        finally:
            entry.users -= 1
            entry.last_used = time.monotonic()

    async def _get(self, key: str, load: Loader, estimate: int, measure: Callable[[Any], int]) -> _Entry:
        async with self._loading.setdefault(key, asyncio.Lock()):  # one load per key at a time
            entry = self._entries.get(key)
            if entry is not None:
                return entry
            self._make_room(key, estimate)
            started = time.monotonic()
            pipeline = await load()
            entry = self._entries[key] = _Entry(pipeline, measure(pipeline))
            log.info("loaded %s (%.2f GB) in %.1f s", key, entry.size / 1e9, time.monotonic() - started)
            self._make_room(key, 0)  # the estimate was low: evict more now
            return entry

    def _make_room(self, key: str, incoming: int) -> None:
        if not self.budget_bytes:
            return
        if incoming > self.budget_bytes:
            raise DoesNotFitError(f"{key} needs about {incoming / 1e9:.1f} GB, more than the whole "
                                  f"budget of {self.budget_bytes / 1e9:.1f} GB")
        while self.used_bytes + incoming > self.budget_bytes:
            idle = [(entry.last_used, name) for name, entry in self._entries.items()
                    if entry.users == 0 and name != key]
            if not idle:
                if incoming:
                    raise DoesNotFitError(f"{key} needs about {incoming / 1e9:.1f} GB and the models "
                                          "in use leave too little of the budget")
                return  # loaded already; the others are busy: shrink once they are done
            self._evict(min(idle)[1])

    def _evict(self, key: str) -> None:
        entry = self._entries.pop(key)
        self.evictions.append(key)
        log.info("evicted %s (%.2f GB) to make room", key, entry.size / 1e9)
        self.release(entry.pipeline)
