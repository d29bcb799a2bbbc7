"""A fake OpenAI-style images API on 127.0.0.1 that records every request it receives.

It speaks one of two dialects, strictly, as a real upstream would:

- ``FakeOpenAI(auth="bearer", edits="multipart")`` — OpenAI's: ``Authorization: Bearer
  <key>``, multipart edits, JSON generations.
- ``FakeOpenAI(auth="plain", edits="json")`` — Siraya's: ``Authorization: <key>``, JSON
  edits with ``image_urls``.

Another auth form or body type is a 400, and so is ``response_format`` sent to a GPT
image model; a wrong key a 401 whose message echoes the key
it got (as OpenAI's partly does), so tests can check retouch never passes it on. What
the fake answers is ``fake.replies`` in order, then ``fake.reply``: async functions of
the ``Received`` request, each answered after ``fake.delay`` seconds;
``fake.files`` are served at ``/files/<name>`` for URL results. The images of an edit
are in ``Received.images``: the multipart parts, or the JSON dialect's ``image_urls``
fetched as the upstream would (data URLs and http(s) URLs).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.images import png, solid
from tests.providers.fake_inputs import ImageRefError, image_bytes
from tests.servers import serving


@dataclass
class Part:
    name: str
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class Received:
    """One request as the fake saw it."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any = None
    fields: list[tuple[str, str]] = field(default_factory=list)
    files: list[Part] = field(default_factory=list)
    images: list[bytes] = field(default_factory=list)  # the input images, in order

    def value(self, name: str) -> str | None:
        return next((value for key, value in self.fields if key == name), None)

    def field_names(self) -> set[str]:
        return {key for key, _ in self.fields}


Reply = Callable[[Received], Awaitable[Response]]


def images_reply(*images: bytes, revised_prompt: str = "", usage: dict | None = None,
                 siraya: bool = False) -> Reply:
    """An answer carrying ``images`` inline; Siraya-style fills absent fields with ''."""
    async def reply(received: Received) -> Response:
        item = {"url": "", "revised_prompt": revised_prompt} if siraya else {}
        data = [{**item, "b64_json": base64.b64encode(image).decode()} for image in images]
        body: dict[str, Any] = {"created": 1760177063, "data": data}
        if usage is not None:
            body["usage"] = usage
        if revised_prompt and not siraya:
            for entry in data:
                entry["revised_prompt"] = revised_prompt
        return JSONResponse(body)
    return reply


def n_images_reply(image: bytes, *, siraya: bool = False) -> Reply:
    """``image`` as many times as the request's ``n`` asks for."""
    async def reply(received: Received) -> Response:
        body = received.json if received.json is not None else dict(received.fields)
        return await images_reply(*[image] * int(body.get("n", 1)), siraya=siraya)(received)
    return reply


def url_reply(*urls: str) -> Reply:
    async def reply(received: Received) -> Response:
        return JSONResponse({"created": 1760177063,
                             "data": [{"url": url, "b64_json": "", "revised_prompt": ""} for url in urls]})
    return reply


def held_reply(release: threading.Event, image: bytes | None = None) -> Reply:
    """``images_reply(image)`` (the gray PNG by default), held until ``release`` is set:
    an upstream that takes as long as a test wants."""
    async def reply(received: Received) -> Response:
        while not release.is_set():
            await asyncio.sleep(0.01)
        return await images_reply(image if image is not None else GRAY_PNG)(received)
    return reply


def error_reply(status: int, message: str, *, type: str = "invalid_request_error",
                code: Any = None, headers: dict[str, str] | None = None) -> Reply:
    async def reply(received: Received) -> Response:
        error = {"message": message, "type": type, "param": None, "code": code}
        return JSONResponse({"error": error}, status_code=status, headers=headers)
    return reply


GRAY_PNG = png(solid((128, 128, 128)))


class FakeOpenAI:
    def __init__(self, *, key: str = "sk-fake-upstream-key", auth: str = "bearer",
                 edits: str = "multipart") -> None:
        self.key = key
        self.auth = auth
        self.edits = edits
        self.closing = threading.Event()
        self.url = ""
        self.reset()

    def reset(self) -> None:
        """Knobs and records back to their defaults; the key and dialect stay."""
        self.received: list[Received] = []
        self.replies: list[Reply] = []
        self.reply: Reply = images_reply(GRAY_PNG)
        self.delay = 0.0
        self.files: dict[str, bytes] = {}
        self.file_requests: list[str] = []

    @property
    def submissions(self) -> int:
        return sum(1 for r in self.received if r.method == "POST")

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v1/images/edits", self._images, methods=["POST"]),
            Route("/v1/images/generations", self._images, methods=["POST"]),
            Route("/files/{name}", self._file, methods=["GET"]),
        ])

    async def wait_until_closed(self, most: float = 10.0) -> None:
        """For a reply that hangs: it returns once the test is over."""
        for _ in range(int(most / 0.01)):
            if self.closing.is_set():
                return
            await asyncio.sleep(0.01)

    async def _images(self, request: Request) -> Response:
        received = await self._record(request)
        problem = self._protocol_problem(received)
        if problem is None:
            problem = await self._fetch_images(received)
        if problem is not None:
            return problem
        reply = self.replies.pop(0) if self.replies else self.reply  # chosen as it arrives
        await self._pause(self.delay)
        return await reply(received)

    async def _pause(self, seconds: float) -> None:
        """Sleep, cut short when the server stops."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.closing.is_set():
            await asyncio.sleep(0.01)

    async def _record(self, request: Request) -> Received:
        received = Received(request.method, request.url.path, dict(request.headers))
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            async with request.form() as form:
                for name, value in form.multi_items():
                    if isinstance(value, UploadFile):
                        received.files.append(
                            Part(name, value.filename, value.content_type, await value.read()))
                        if name in ("image", "image[]"):
                            received.images.append(received.files[-1].data)
                    else:
                        received.fields.append((name, value))
        elif content_type.startswith("application/json"):
            received.json = await request.json()
        self.received.append(received)
        return received

    def _protocol_problem(self, received: Received) -> Response | None:
        given = received.headers.get("authorization", "")
        expected = f"Bearer {self.key}" if self.auth == "bearer" else self.key
        wrong_form = given.startswith("Bearer ") != (self.auth == "bearer")
        if given and wrong_form:
            form = "Bearer <key>" if self.auth == "bearer" else "<key>"
            return _error(400, f"Authorization must be {form}")
        if given != expected:
            return _error(401, f"Incorrect API key provided: {given}", code="invalid_api_key")
        is_edit = received.path.endswith("/edits")
        wants_json = not is_edit or self.edits == "json"
        if wants_json and received.json is None:
            return _error(400, "expected a JSON body")
        if not wants_json and not received.fields:
            return _error(400, "expected multipart/form-data")
        body = received.json if received.json is not None else dict(received.fields)
        if str(body.get("model", "")).startswith("gpt-image") and "response_format" in body:
            return _error(400, "Unknown parameter: 'response_format'.")  # as OpenAI answers
        return None

    async def _fetch_images(self, received: Received) -> Response | None:
        """The JSON dialect names its images by URL: fetch them, as the upstream would."""
        refs = received.json.get("image_urls") if isinstance(received.json, dict) else None
        try:
            received.images.extend([await image_bytes(ref) for ref in refs or []])
        except ImageRefError as exc:
            return _error(400, f"Invalid image_urls: {exc}")
        return None

    async def _file(self, request: Request) -> Response:
        name = request.path_params["name"]
        self.file_requests.append(name)
        if name not in self.files:
            return Response(status_code=404)
        return Response(self.files[name], media_type="image/png")


def _error(status: int, message: str, code: str | None = None) -> Response:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error",
                                   "param": None, "code": code}}, status_code=status)


@contextlib.contextmanager
def running_fake(fake: FakeOpenAI) -> Iterator[FakeOpenAI]:
    """Serve ``fake`` under uvicorn in a thread; ``fake.url`` is its base URL."""
    with serving(fake.app(), lifespan="off") as url:
        fake.url = url
        try:
            yield fake
        finally:
            fake.closing.set()
