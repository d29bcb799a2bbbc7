"""The usage log: one row per request, whatever its outcome, written in batches.

Requests hand their row to ``record`` and go on; one background task inserts what has
gathered every ``interval`` seconds (or at ``batch`` rows) in a single statement, so
the log costs a request nothing measurable. ``close`` writes what is left; a process
killed outright loses at most the last ``interval`` of rows, never half a row.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections import Counter
from dataclasses import dataclass, field

import anyio
from sqlalchemy import case, func, insert, select

from retouch.db.engine import Database
from retouch.db.tables import Usage

log = logging.getLogger("retouch.usage")


@dataclass
class UsageEntry:
    request_id: str
    key_label: str
    endpoint: str
    status: int
    latency_ms: float
    key_id: int | None = None
    model: str | None = None
    served_by: str | None = None
    n: int = 0
    images_out: int = 0
    error_type: str | None = None
    upstream_ms: float | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    cost_usd: float | None = None
    created_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


@dataclass(frozen=True)
class KeyUsage:
    key_id: int | None
    key_label: str
    requests: int
    images: int
    spend_usd: float
    errors: int


class UsageLog:
    def __init__(self, database: Database, *, interval: float = 0.2, batch: int = 500,
                 capacity: int = 50_000) -> None:
        self.database = database
        self.interval = interval
        self.batch = batch
        self._queue: asyncio.Queue[UsageEntry] = asyncio.Queue(capacity)
        self._task: asyncio.Task | None = None
        self._unwritten: list[UsageEntry] = []  # taken from the queue, not yet in the database
        # Cost per key of the rows this process recorded, and of those written since: budgets
        # (auth/limits.py) add what the database does not have yet to what it has.
        self._cost_recorded: Counter[int] = Counter()
        self._cost_written: Counter[int] = Counter()

    def start(self) -> None:
        """Run the writer in the current event loop (the app's lifespan calls this)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._write_forever())

    async def record(self, entry: UsageEntry) -> None:
        """Queue one row; waits only when the writer is far behind (back-pressure, not loss)."""
        await self._queue.put(entry)
        if entry.key_id is not None and entry.cost_usd:
            self._cost_recorded[entry.key_id] += entry.cost_usd

    def cost_in_process(self, key_id: int) -> tuple[float, float]:
        """The cost of the rows this process recorded for the key since it started, and the
        part of it not yet in the database (queued, or being written)."""
        recorded = self._cost_recorded[key_id]
        return recorded, max(0.0, recorded - self._cost_written[key_id])

    async def flush(self, timeout: float = 10.0) -> None:
        """Return once every row recorded so far is in the database."""
        if self._task is None:
            await self._write_all()
            return
        with anyio.fail_after(timeout):
            while not self._queue.empty() or self._unwritten:
                await asyncio.sleep(0.01)

    async def close(self) -> None:
        """Stop the writer and write what is left."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._write_all()

    async def _write_all(self) -> None:
        rows, self._unwritten = self._unwritten + self._take(self._queue.qsize()), []
        for start in range(0, len(rows), self.batch):
            await self._write(rows[start:start + self.batch])

    async def by_key(self, since: dt.datetime, key_id: int | None = None) -> list[KeyUsage]:
        """Requests, images, spend and errors per key since ``since``."""
        query = (select(Usage.key_id, Usage.key_label, func.count(), func.coalesce(func.sum(Usage.images_out), 0),
                        func.coalesce(func.sum(Usage.cost_usd), 0.0),
                        func.sum(case((Usage.status >= 400, 1), else_=0)))
                 .where(Usage.created_at >= since).group_by(Usage.key_id, Usage.key_label)
                 .order_by(Usage.key_label))
        if key_id is not None:
            query = query.where(Usage.key_id == key_id)
        async with self.database.session() as session:
            rows = (await session.execute(query)).all()
        return [KeyUsage(k, label, int(n), int(images), float(spend), int(errors or 0))
                for k, label, n, images, spend, errors in rows]

    # -- the writer ----------------------------------------------------------------------

    async def _write_forever(self) -> None:
        while True:
            if not self._unwritten:
                self._unwritten.append(await self._queue.get())
            await asyncio.sleep(self.interval)  # let a batch gather
            self._unwritten += self._take(self.batch)
            try:
                await self._write(self._unwritten)
                self._unwritten = []
            except Exception:  # the database is away: keep the rows, try again
                log.exception("could not write %d usage rows; retrying", len(self._unwritten))
                await asyncio.sleep(1.0)

    def _take(self, most: int) -> list[UsageEntry]:
        rows = []
        while len(rows) < most and not self._queue.empty():
            rows.append(self._queue.get_nowait())
        return rows

    async def _write(self, rows: list[UsageEntry]) -> None:
        if not rows:
            return
        async with self.database.session() as session:
            # vars(), not asdict(): asdict deep-copies every value, a tenth of the log's cost.
            await session.execute(insert(Usage), [vars(row) for row in rows])
            await session.commit()
        for row in rows:  # right after the commit, with no wait between
            if row.key_id is not None and row.cost_usd:
                self._cost_written[row.key_id] += row.cost_usd
