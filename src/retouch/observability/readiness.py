"""Readiness: named async checks of what serving needs (database, storage, Redis).

The app keeps a ``ReadinessChecks`` in ``app.state.readiness``; whoever builds a
dependency registers its check there::

    app.state.readiness.add("database", database.check)

A check is an async function of no arguments that returns when the dependency can be
used and raises when it cannot. ``GET /readyz`` runs them all at once, each within
``timeout`` seconds, and answers 200 only when every one passed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio

from retouch.observability.logs import redact

log = logging.getLogger("retouch.readiness")

Check = Callable[[], Awaitable[object]]
OK = "ok"
_MESSAGE_CHARS = 300


@dataclass(frozen=True)
class Readiness:
    """The outcome: each check's name with ``"ok"`` or what went wrong."""

    checks: dict[str, str]

    @property
    def ready(self) -> bool:
        return all(result == OK for result in self.checks.values())


class ReadinessChecks:
    """The checks, in the order they were added; ``timeout`` bounds each one."""

    def __init__(self, timeout: float = 2.0) -> None:
        self.timeout = timeout
        self._checks: dict[str, Check] = {}

    def add(self, name: str, check: Check) -> None:
        """Register ``check`` under ``name`` (a name registered twice is a mistake)."""
        if name in self._checks:
            raise ValueError(f"a readiness check named {name!r} is already registered")
        self._checks[name] = check

    @property
    def names(self) -> list[str]:
        return list(self._checks)

    async def run(self) -> Readiness:
        """Run every check concurrently; a failure or a timeout marks that check."""
        results: dict[str, str] = {}
        async with anyio.create_task_group() as group:
            for name, check in self._checks.items():
                group.start_soon(self._run_one, name, check, results)
        return Readiness({name: results[name] for name in self._checks})

    async def _run_one(self, name: str, check: Check, results: dict[str, str]) -> None:
        try:
            with anyio.fail_after(self.timeout):
                await check()
        except TimeoutError:
            results[name] = f"no answer within {self.timeout:g} s"
        except Exception as exc:  # any dependency's failure, said without secrets
            results[name] = public_message(exc)
        else:
            results[name] = OK
            return
        log.warning("not ready: %s: %s", name, results[name])


def public_message(exc: BaseException) -> str:
    """What a failed check says: its message (or its type), redacted and trimmed."""
    text = str(exc).strip() or type(exc).__name__
    return redact(text)[:_MESSAGE_CHARS]


async def ping_redis(url: str, timeout: float = 5.0) -> None:
    """A check for the Redis server at ``url``: raises unless it answers PING. (With a
    client already open, register ``client.ping`` instead.)"""
    import redis.asyncio as aioredis

    client = aioredis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        await client.ping()
    finally:
        await client.aclose()
