"""What stands around a model run: the key's quotas and the ``Idempotency-Key``.

    rpm (``admit``, before the body is read) → idempotency claim (replay, or hold the key)
    → images/day and budget (``reserve``) → the model → settle the quotas → keep the answer

A request with an ``Idempotency-Key`` is not cancelled when its client hangs up: the
client is likely to retry, and the retry should get this run's answer rather than pay
for a second one. Only successful answers are kept; after a failure the key is released
and a retry runs again.

A streamed request that asks for ``partial_images`` is answered while the job runs (the
events come as the backend makes them); with an ``Idempotency-Key`` it is answered once
the job is done instead, so that the whole stream can be kept and replayed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
from fastapi.responses import Response
from starlette.requests import Request

from retouch.api.disconnect import unless_disconnected
from retouch.api.streaming import JobStream, stream_job
from retouch.api.usage import finish, hand_off
from retouch.auth import Principal
from retouch.auth.limits import Quotas, RateHeaders
from retouch.db.usage import UsageEntry
from retouch.idempotency import HEADER, IdempotencyStore, StoredResponse, check_key
from retouch.protocol import ImageParams
from retouch.service import PartialSink, Served

REPLAYED_HEADER = "idempotent-replayed"

Work = Callable[[PartialSink | None], Awaitable[Served]]
Answer = Callable[[Served], Response]


@dataclass(frozen=True)
class Stream:
    """A request to answer as events while its job runs: its parameters and event prefix."""

    params: ImageParams
    prefix: str


async def admit(request: Request, principal: Principal) -> RateHeaders:
    """Count the request against the key's rpm; 429 when over (before any body is read)."""
    return await _quotas(request).admit(principal)


async def serve_guarded(request: Request, principal: Principal, entry: UsageEntry, *, n: int,
                        price_per_image: float | None, work: Work, answer: Answer,
                        fingerprint: Callable[[], str], rate_headers: RateHeaders,
                        stream: Stream | None = None) -> Response:
    """Run ``work`` at most once per idempotency key, within the key's quotas; ``answer``
    turns what it served into the response (``stream``: events as the job runs)."""
    key = request.headers.get(HEADER)
    if key is None and stream is not None:
        return await _streamed(request, principal, entry, n, price_per_image, work, stream, rate_headers)
    if key is None:
        response = await _metered(request, principal, n, price_per_image, work, answer, cancellable=True)
        return _with(response, rate_headers)
    claim = await _store(request).claim(principal.key_id, check_key(key), fingerprint())
    if claim.replay is not None:
        entry.served_by = claim.replay.headers.get("x-retouch-model")
        return _with(_replayed(claim.replay), rate_headers)
    try:
        response = await _metered(request, principal, n, price_per_image, work, answer, cancellable=False)
    except BaseException:
        await claim.release()
        raise
    await claim.complete(StoredResponse(response.status_code, dict(response.headers), response.body))
    return _with(response, rate_headers)


async def _metered(request: Request, principal: Principal, n: int, price_per_image: float | None,
                   work: Work, answer: Answer, *, cancellable: bool) -> Response:
    reservation = await _quotas(request).reserve(principal, images=n, price_per_image=price_per_image)
    try:
        served = await (unless_disconnected(request, work(None)) if cancellable else work(None))
    except BaseException:
        with anyio.CancelScope(shield=True):  # give the quota back even when cancelled
            await reservation.cancel()
        raise
    await reservation.settle(len(served.response.data), served.cost_usd)
    return _with(answer(served), reservation.headers)


async def _streamed(request: Request, principal: Principal, entry: UsageEntry, n: int,
                    price_per_image: float | None, work: Work, stream: Stream, rate_headers: RateHeaders) -> Response:
    """Events while the job runs; the quotas are settled and the usage row written when
    the stream ends (the client hanging up cancels the job)."""
    reservation = await _quotas(request).reserve(principal, images=n, price_per_image=price_per_image)

    async def done(served: Served | None, failure: BaseException | None) -> None:
        if served is None:
            await reservation.cancel()
        else:
            await reservation.settle(len(served.response.data), served.cost_usd)
            entry.served_by, entry.images_out = served.model, len(served.response.data)
            entry.cost_usd, entry.upstream_ms = served.cost_usd, served.upstream_ms
        await finish(request, entry, failure)

    hand_off(request)
    events = stream_job(work, stream.params, stream.prefix, done)
    headers = {"x-retouch-model": entry.model or "", **rate_headers, **reservation.headers}
    return JobStream(events, abandoned=lambda: done(None, anyio.get_cancelled_exc_class()()), headers=headers)


def _replayed(stored: StoredResponse) -> Response:
    headers = {k: v for k, v in stored.headers.items() if k != "content-type"}
    return Response(stored.body, status_code=stored.status, headers={**headers, REPLAYED_HEADER: "true"},
                    media_type=stored.headers.get("content-type"))


def _with(response: Response, headers: RateHeaders) -> Response:
    response.headers.update(headers)
    return response


def _quotas(request: Request) -> Quotas:
    return request.app.state.quotas


def _store(request: Request) -> IdempotencyStore:
    return request.app.state.idempotency
