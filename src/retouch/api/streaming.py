"""Server-sent events as OpenAI's image streams send them.

    event: image_edit.partial_image     (generations: image_generation.partial_image)
    data: {"type": …, "b64_json": …, "partial_image_index": 0, "size": …, …}

    event: image_edit.completed         one per image, once the job is done
    data: {"type": …, "b64_json": …, "size": …, "quality": …, "background": …, "output_format": …}

    event: error                        when the job fails after the stream began
    data: {"error": {"message", "type", "param", "code"}}

``stream_job`` runs a job that sends partial images while it works (``partials``) and
turns them into events as they come; the answer's events follow when it is done.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import anyio
import numpy as np
import orjson
from starlette.responses import StreamingResponse

from retouch.engine.codecs import encode
from retouch.errors import RetouchError
from retouch.protocol import ImageParams, ImagesResponse
from retouch.service import PartialSink, Served

log = logging.getLogger("retouch.api")

Work = Callable[[PartialSink], Awaitable[Served]]


def completed_events(result: ImagesResponse, prefix: str) -> Iterator[str]:
    """One ``*.completed`` event per image."""
    for item in result.data:
        yield _event(f"{prefix}.completed", {
            "type": f"{prefix}.completed", "b64_json": item.b64_json,
            "created_at": result.created or int(time.time()), "size": result.size,
            "quality": result.quality or "auto", "background": result.background,
            "output_format": result.output_format,
        })


def partial_event(prefix: str, index: int, pixels: np.ndarray, params: ImageParams) -> str:
    data = encode(pixels, params.encoding, quality=params.output_compression)
    return _event(f"{prefix}.partial_image", {
        "type": f"{prefix}.partial_image", "b64_json": base64.b64encode(data).decode("ascii"),
        "created_at": int(time.time()), "size": f"{pixels.shape[1]}x{pixels.shape[0]}",
        "quality": params.quality or "auto", "background": params.background or "opaque",
        "output_format": params.encoding, "partial_image_index": index,
    })


def error_event(error: RetouchError) -> str:
    return _event("error", error.to_envelope())


async def stream_job(work: Work, params: ImageParams, prefix: str,
                     on_done: Callable[[Served | None, BaseException | None], Awaitable[None]]) -> AsyncIterator[str]:
    """Run ``work`` in a task and yield its partial images as events, then the answer's
    events (or an error event). ``on_done`` is told how it ended, whatever happens —
    the client hanging up included (the job is then cancelled)."""
    partials: asyncio.Queue[tuple[int, np.ndarray]] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def sink(index: int, pixels: np.ndarray) -> None:  # called from the backend's thread
        loop.call_soon_threadsafe(partials.put_nowait, (index, pixels))

    task = asyncio.create_task(work(sink))
    served, failure = None, None
    try:
        while True:
            index, pixels = await _next_partial(partials, task)
            if pixels is None:
                break
            yield await anyio.to_thread.run_sync(partial_event, prefix, index, pixels, params)
        served = task.result()
        for event in completed_events(served.response, prefix):
            yield event
    except RetouchError as exc:
        failure = exc
        yield error_event(exc)
    except BaseException as exc:
        failure = exc
        if not isinstance(exc, Exception):
            raise  # cancelled: the client went away
        log.exception("stream failed")
        yield error_event(RetouchError("The server hit an internal error; it has been logged."))
    finally:
        if not task.done():
            task.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.wait([task])
        with anyio.CancelScope(shield=True):
            await on_done(served, failure)


async def _next_partial(partials: asyncio.Queue, task: asyncio.Task) -> tuple[int, Any]:
    """The next partial image, or ``(-1, None)`` once the job is done and none is left."""
    while partials.empty() and not task.done():
        getter = asyncio.ensure_future(partials.get())
        await asyncio.wait([getter, task], return_when=asyncio.FIRST_COMPLETED)
        if getter.done():
            return getter.result()
        getter.cancel()
    if not partials.empty():
        return partials.get_nowait()
    return -1, None


class JobStream(StreamingResponse):
    """The events of ``stream_job``, closed when the response ends however it ends (the
    job is cancelled with them). If the client is gone before the first event is asked
    for, the generator never started and its own clean-up cannot run: ``abandoned``
    does that clean-up instead."""

    def __init__(self, events: AsyncIterator[str], *, abandoned: Callable[[], Awaitable[None]],
                 headers: dict[str, str]) -> None:
        self._started = False
        self._abandoned = abandoned
        self._events = self._noting_start(events)
        super().__init__(self._events, media_type="text/event-stream", headers=headers)

    async def _noting_start(self, events: AsyncIterator[str]) -> AsyncIterator[str]:
        self._started = True
        async with contextlib.aclosing(events):
            async for event in events:
                yield event

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                if self._started:
                    await self._events.aclose()
                else:
                    await self._abandoned()


def _event(name: str, data: dict) -> str:
    return f"event: {name}\ndata: {orjson.dumps(data).decode()}\n\n"
