"""A fake Stability AI v2beta on 127.0.0.1: answers the multipart
``/stable-image/edit/{operation}`` calls like Stability does and records what it received."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from tests.servers import serving


@dataclass
class Reply:
    """One scripted answer; ``body=None`` is the default answer with the fake's image."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Upload:
    filename: str
    content_type: str
    data: bytes


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    fields: dict[str, str]
    files: dict[str, Upload]


class FakeStability:
    """``replies`` are used in order, then ``default`` (unless set, the answer with the
    fake's image and the seed it was sent)."""

    def __init__(self, image: bytes) -> None:
        self.image = image
        self.in_flight = 0
        self.closing = False
        self.base = ""
        self.app = Starlette(routes=[Route("/{path:path}", self.handle, methods=["POST"])])
        self.reset()

    def reset(self) -> None:
        """Knobs and records back to their defaults; the image stays."""
        self.replies: list[Reply] = []
        self.default = Reply()
        self.received: list[Received] = []
        self.most_in_flight = 0

    async def handle(self, request: Request) -> JSONResponse:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            received = await self.record(request)
            reply = self.replies.pop(0) if self.replies else self.default
            await self.wait(reply.delay)
            body = reply.body
            if body is None:
                body = {"image": base64.b64encode(self.image).decode(), "finish_reason": "SUCCESS",
                        "seed": int(received.fields.get("seed", 0))}
            return JSONResponse(body, status_code=reply.status, headers=reply.headers)
        finally:
            self.in_flight -= 1

    async def record(self, request: Request) -> Received:
        fields: dict[str, str] = {}
        files: dict[str, Upload] = {}
        async with request.form() as form:
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    files[name] = Upload(value.filename or "", value.content_type or "", await value.read())
                else:
                    fields[name] = value
        received = Received(request.url.path, dict(request.headers), fields, files)
        self.received.append(received)
        return received

    async def wait(self, delay: float) -> None:
        """Sleep ``delay``, cut short at shutdown."""
        deadline = time.monotonic() + delay
        while not self.closing and time.monotonic() < deadline:
            await asyncio.sleep(0.005)


@contextlib.contextmanager
def running(fake: FakeStability) -> Iterator[FakeStability]:
    """Serve ``fake`` with uvicorn in a thread; ``fake.base`` is its URL meanwhile."""
    with serving(fake.app, lifespan="off") as url:
        fake.base = url
        try:
            yield fake
        finally:
            fake.closing = True
