"""Retention: outputs older than ``RETOUCH_RETENTION`` are deleted, and so are lent inputs
older than their link (``RETOUCH_INPUT_LINK_TTL``: a job that ended in a crash never
deleted them, and nobody can fetch them any more).

Only files stored before ``now - age`` are listed, and names are never reused, so a
prune cannot touch a file younger than the retention. ``prune`` runs once (``retouch
storage prune``); ``pruning_in_background`` runs it every ``interval_s`` in a server.
Replicas sharing storage may all prune: deleting what another replica deleted is a no-op.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio

from retouch.config import Settings
from retouch.storage.base import INPUTS, OUTPUTS, Storage

log = logging.getLogger("retouch.storage.retention")

# Writes take well under a second; a temp file an hour old belongs to a dead process.
PARTIAL_AGE_S = 3600.0


@dataclass(frozen=True)
class RetentionPolicy:
    """How old files may get: ``outputs_s`` (0 keeps outputs forever) and ``inputs_s``."""

    outputs_s: float
    inputs_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        return cls(outputs_s=settings.retention_seconds, inputs_s=settings.input_link_ttl)

    @property
    def interval_s(self) -> float:
        """How often a server prunes: half the shortest age, between a minute and an hour."""
        shortest = min((age for age in (self.outputs_s, self.inputs_s) if age > 0), default=7200.0)
        return min(max(shortest / 2, 60.0), 3600.0)

    def ages(self) -> dict[str, float]:
        return {OUTPUTS: self.outputs_s, INPUTS: self.inputs_s}


@dataclass
class Pruned:
    """What a prune deleted (or, in a dry run, would delete), by area."""

    names: dict[str, list[str]] = field(default_factory=lambda: {OUTPUTS: [], INPUTS: []})
    partial: int = 0

    @property
    def total(self) -> int:
        return sum(len(names) for names in self.names.values()) + self.partial


async def prune(storage: Storage, policy: RetentionPolicy, *, now: float | None = None,
                dry_run: bool = False) -> Pruned:
    """Delete every file older than its area's age (as of ``now``); a dry run only lists them."""
    now = time.time() if now is None else now
    pruned = Pruned()
    for area, age in policy.ages().items():
        if age <= 0:  # kept forever
            continue
        for name in await storage.list_older_than(area, now - age):
            if dry_run or await storage.delete(name, area=area):
                pruned.names[area].append(name)
    if not dry_run:
        pruned.partial = await storage.discard_partial(now - PARTIAL_AGE_S)
    return pruned


async def prune_forever(storage: Storage, policy: RetentionPolicy, *,
                        interval_s: float | None = None) -> None:
    """Prune now and then every ``interval_s`` (default ``policy.interval_s``) until
    cancelled. A failed prune is logged and retried next time, never raised: storage
    being down for a while must not take the server with it."""
    interval_s = policy.interval_s if interval_s is None else interval_s
    while True:
        try:
            pruned = await prune(storage, policy)
        except Exception as exc:
            log.warning("retention: prune failed (%s); next try in %.0f s", exc, interval_s)
        else:
            if pruned.total:
                log.info("retention: deleted %d outputs, %d lent inputs, %d partial writes",
                         len(pruned.names[OUTPUTS]), len(pruned.names[INPUTS]), pruned.partial)
        await anyio.sleep(interval_s)


@asynccontextmanager
async def pruning_in_background(storage: Storage, policy: RetentionPolicy, *,
                                interval_s: float | None = None) -> AsyncIterator[None]:
    """``prune_forever`` in a task for as long as the ``async with`` body runs (a server's
    lifespan); stopped on exit."""
    async with anyio.create_task_group() as group:
        group.start_soon(lambda: prune_forever(storage, policy, interval_s=interval_s))
        try:
            yield
        finally:
            group.cancel_scope.cancel()
