"""Each image request's row in the usage log, written whatever the outcome."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator

import anyio
from starlette.requests import Request

from retouch.auth import Principal
from retouch.db.usage import UsageEntry
from retouch.errors import RetouchError

# nginx's "client closed request": the caller went away before the answer.
CLIENT_CLOSED = 499


def request_id(request: Request) -> str:
    """The request's id (set by the request-id middleware when installed)."""
    found = getattr(request.state, "request_id", None)
    if not found:
        found = request.state.request_id = uuid.uuid4().hex
    return found


@contextlib.asynccontextmanager
async def recording(request: Request, principal: Principal, endpoint: str) -> AsyncIterator[UsageEntry]:
    """Yield the request's ``UsageEntry`` for the endpoint to fill in; on the way out it
    gets the outcome (an error's status and type), the latency and the bytes in, and
    goes to the usage log — shielded, so a cancelled request is logged too. A response
    that goes on after the endpoint returns (a stream) takes the entry over with
    ``hand_off`` and calls ``finish`` when it ends."""
    request.state.usage_started = time.perf_counter()
    entry = UsageEntry(request_id=request_id(request), key_label=principal.key_id, endpoint=endpoint,
                       status=200, latency_ms=0.0,
                       key_id=principal.record.id if principal.record is not None else None)
    error: BaseException | None = None
    try:
        yield entry
    except BaseException as exc:
        error = exc
        raise
    finally:
        if error is not None or not getattr(request.state, "usage_handed_off", False):
            await finish(request, entry, error)


def hand_off(request: Request) -> None:
    """The response outlives the endpoint: its end, not the endpoint's, is logged."""
    request.state.usage_handed_off = True


async def finish(request: Request, entry: UsageEntry, error: BaseException | None = None) -> None:
    """Note the outcome, the latency and the bytes in; count it; write it to the log."""
    if isinstance(error, RetouchError):
        entry.status, entry.error_type = error.status, error.code or error.type
    elif isinstance(error, anyio.get_cancelled_exc_class()):
        entry.status, entry.error_type = CLIENT_CLOSED, "client_disconnected"
    elif error is not None:
        entry.status, entry.error_type = 500, type(error).__name__
    entry.latency_ms = 1e3 * (time.perf_counter() - request.state.usage_started)
    declared = request.headers.get("content-length", "")
    entry.bytes_in = int(declared) if declared.isdigit() else 0
    _observe(request.app.state, entry)
    usage = getattr(request.app.state, "usage", None)
    if usage is not None:
        with anyio.CancelScope(shield=True):
            await usage.record(entry)


def _observe(state, entry: UsageEntry) -> None:
    metrics = getattr(state, "metrics", None)
    if metrics is not None:
        metrics.observe_edit(entry.served_by or entry.model, status=entry.status,
                             seconds=entry.latency_ms / 1e3, images=entry.images_out,
                             cost=entry.cost_usd, error=entry.error_type)
