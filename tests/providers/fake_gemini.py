"""A fake Gemini API on 127.0.0.1: answers ``generateContent`` like Google does and
records every request it received."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
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
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def parts(self) -> list[dict[str, Any]]:
        return self.body["contents"][0]["parts"]

    @property
    def images(self) -> list[bytes]:
        return [base64.b64decode(p["inline_data"]["data"]) for p in self.parts if "inline_data" in p]


class FakeGemini:
    """``replies`` are used in order, then ``default`` (unless set, the answer with the
    fake's image). ``gate``, when set, holds each request until that many have been in
    flight at once (or a second passes), which proves that calls overlap without timing
    anything."""

    def __init__(self, image: bytes, text: str = "Here is your image, at dusk.") -> None:
        self.image = image
        self.text = text
        self.in_flight = 0
        self.closing = False
        self.base = ""
        self.app = Starlette(routes=[Route("/{path:path}", self.handle, methods=["POST"])])
        self.reset()

    def reset(self) -> None:
        """Knobs and records back to their defaults; the image and text stay."""
        self.replies: list[Reply] = []
        self.default = Reply()
        self.received: list[Received] = []
        self.gate = 0
        self.most_in_flight = 0

    def answer(self) -> dict[str, Any]:
        return {
            "candidates": [{
                "content": {"role": "model", "parts": [
                    {"text": self.text},
                    {"inlineData": {"mimeType": "image/png",
                                    "data": base64.b64encode(self.image).decode()}},
                ]},
                "finishReason": "STOP",
            }],
            "usageMetadata": {"promptTokenCount": 300, "candidatesTokenCount": 1290,
                              "totalTokenCount": 1590},
        }

    async def handle(self, request: Request) -> JSONResponse:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            self.received.append(Received(request.url.path, dict(request.headers), await request.json()))
            reply = self.replies.pop(0) if self.replies else self.default
            await self.wait(reply.delay, until=lambda: self.most_in_flight >= self.gate)
            body = self.answer() if reply.body is None else reply.body
            return JSONResponse(body, status_code=reply.status, headers=reply.headers)
        finally:
            self.in_flight -= 1

    async def wait(self, delay: float, until) -> None:
        """Sleep ``delay`` (then up to 1 s more for the gate), cut short at shutdown."""
        deadline = time.monotonic() + delay
        gate_deadline = deadline + 1.0
        while not self.closing and (time.monotonic() < deadline
                                    or (not until() and time.monotonic() < gate_deadline)):
            await asyncio.sleep(0.005)


@contextlib.contextmanager
def running(fake: FakeGemini) -> Iterator[FakeGemini]:
    """Serve ``fake`` with uvicorn in a thread; ``fake.base`` is its URL meanwhile."""
    with serving(fake.app, lifespan="off") as url:
        fake.base = url
        try:
            yield fake
        finally:
            fake.closing = True
