"""Stop work the client no longer waits for.

Image jobs run for seconds to minutes and hosted ones are billed; when the client
hangs up, the job is cancelled so backends can cancel upstream (fal, Replicate) and
nothing more is spent on an answer nobody will read.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import anyio
from starlette.requests import Request

from retouch.errors import RetouchError

T = TypeVar("T")


class ClientDisconnected(RetouchError):
    """Never reaches a client (it is gone); 499 is what nginx logs for the same case."""

    status = 499
    type = "invalid_request_error"
    code = "client_closed_request"


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``, cancelling it if the client disconnects first. Call only after
    the request body has been read: from then on ``receive()`` only reports disconnects."""
    outcome: list[T] = []
    failure: list[Exception] = []

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        group.cancel_scope.cancel()

    async with anyio.create_task_group() as group:
        group.start_soon(watch)  # the work runs in this task: one task more, not two
        try:
            outcome.append(await work)
        except Exception as exc:  # re-raised below as itself, not inside an ExceptionGroup
            failure.append(exc)
        group.cancel_scope.cancel()
    if failure:
        raise failure[0]
    if not outcome:
        raise ClientDisconnected("The client closed the connection; the job was cancelled.")
    return outcome[0]
