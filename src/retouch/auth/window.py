"""Requests per minute as a sliding window counter, one storage round trip per request.

Each key counts its requests per clock minute (``storage.incr`` on a bucket named by the
minute, the ``limits`` library's storage: memory or Redis). A request is admitted when

    previous minute's count × (the share of it still inside the last 60 s) + this minute's

stays within the limit — Cloudflare's approximation of a moving window. A burst from rest
gets exactly N; across a minute boundary the previous minute is assumed to have been
spread evenly, which is off by at most what that assumption misjudges. The previous
minute no longer changes, so it is read once per key and minute and kept here; the
library's own window strategies cost a second round trip per request (hit, then the
window's state for the headers), which was most of what rate limits added to a request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from limits.aio.storage import Storage

MINUTE = 60
# A bucket must outlive the minute after its own, when it is the "previous" one.
_BUCKET_TTL = 2 * MINUTE + 5


@dataclass(frozen=True)
class Admission:
    """The outcome of one request: admitted or not, what is left, and when room frees up."""

    admitted: bool
    remaining: int
    wait_s: float  # until one more request fits (refused) or this minute ends (admitted)


class SlidingMinute:
    """Per-minute request counts for many keys in one ``limits`` storage."""

    def __init__(self, storage: Storage, prefix: str = "rpm") -> None:
        self.storage = storage
        self.prefix = prefix
        self._previous: dict[tuple[str, int], int] = {}  # (key, minute) → its final count

    async def hit(self, key: str, limit: int, now: float) -> Admission:
        """Count one request for ``key`` at ``now`` (Unix seconds) against ``limit``."""
        minute, elapsed = divmod(now, MINUTE)
        minute = int(minute)
        current = await self.storage.incr(self._bucket(key, minute), _BUCKET_TTL, amount=1)
        previous = await self._previous_count(key, minute)
        weight = 1 - elapsed / MINUTE
        used = previous * weight + current
        if used <= limit:
            return Admission(True, math.floor(limit - used), MINUTE - elapsed)
        await self.storage.incr(self._bucket(key, minute), _BUCKET_TTL, amount=-1)  # not admitted
        return Admission(False, 0, seconds_until_room(previous, current - 1, elapsed, limit))

    async def _previous_count(self, key: str, minute: int) -> int:
        known = self._previous.get((key, minute - 1))
        if known is None:
            known = int(await self.storage.get(self._bucket(key, minute - 1)) or 0)
            for stale in [k for k in self._previous if k[1] < minute - 1]:
                del self._previous[stale]
            self._previous[(key, minute - 1)] = known
        return known

    def _bucket(self, key: str, minute: int) -> str:
        return f"{self.prefix}/{key}/{minute}"


def seconds_until_room(previous: int, current: int, elapsed: float, limit: int) -> float:
    """How long until one more request fits, if none arrive meanwhile: the previous
    minute's share fades within this minute, or this minute's fades within the next."""
    if limit <= 0:
        return MINUTE - elapsed
    if current + 1 <= limit and previous > 0:
        # previous × (1 - (elapsed + t) / 60) + current + 1 <= limit
        fade = MINUTE * (1 - (limit - current - 1) / previous) - elapsed
        if fade <= MINUTE - elapsed:
            return max(0.0, fade)
    # Next minute: current × (1 - t / 60) + 1 <= limit
    after = MINUTE * (1 - (limit - 1) / current) if current > 0 else 0.0
    return MINUTE - elapsed + max(0.0, after)
