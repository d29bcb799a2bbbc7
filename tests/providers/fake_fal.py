"""A fake fal.ai queue on 127.0.0.1: speaks the queue protocol, records what it receives.

Routes, as on queue.fal.run::

    POST /{model}                          submit → {request_id, status_url, response_url, cancel_url}
    GET  /{model}/requests/{id}/status     the next of ``states`` (the last one repeats)
    GET  /{model}/requests/{id}            {images: [{url, width, height, content_type}], seed, …}
    PUT  /{model}/requests/{id}/cancel     202 {status: CANCELLATION_REQUESTED}
    GET  /files/{name}                     result images, as on fal.media (``result.png`` only)

Input images (every ``*_url`` and ``*_urls`` field) are fetched at submission, data URLs
and http(s) URLs alike, into ``Submission.inputs``; one that cannot be read is a 422.
Tests set the knobs on ``FakeFal`` before the call and read the records after;
``reset()`` puts both back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.images import gradient, png
from tests.providers.fake_inputs import ImageRefError, image_bytes, is_image_ref
from tests.servers import serving

RESULT = gradient(40, 30)


@dataclass
class Submission:
    model: str
    headers: dict[str, str]
    body: dict[str, Any]
    inputs: dict[str, list[bytes]] = field(default_factory=dict)  # fetched image fields

    @property
    def images(self) -> list[bytes]:
        return self.inputs.get("image_url", []) + self.inputs.get("image_urls", [])


@dataclass
class FakeFal:
    # Knobs
    states: list[str] = field(default_factory=lambda: ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"])
    result_png: bytes = field(default_factory=lambda: png(RESULT))
    submit_error: tuple[int, dict, dict] | None = None  # (status, body, headers)
    submit_failures: int | None = None  # how many submissions get submit_error (None: all)
    submit_delay: float = 0.0  # seconds before answering a submission
    status_failures: int = 0  # the first N status checks answer 503
    final_status: dict | None = None  # replaces the COMPLETED status body
    result_error: tuple[int, dict] | None = None  # the response URL answers this instead
    queue_base: str | None = None  # where status/response/cancel URLs point (default: here)
    image_url: str | None = None  # the result image URL (default: /files/result.png here)
    nsfw: bool = False
    # Records
    base_url: str = ""
    submissions: list[Submission] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)  # request ids handed out
    status_queries: list[str] = field(default_factory=list)
    status_auth: list[str] = field(default_factory=list)
    result_reads: int = 0
    cancels: list[str] = field(default_factory=list)
    file_reads: list[str] = field(default_factory=list)

    # -- routes -------------------------------------------------------------------------

    def reset(self) -> None:
        """Every knob and record back to its default; the base URL stays."""
        for spec in fields(self):
            if spec.name != "base_url":
                default = spec.default if spec.default_factory is MISSING else spec.default_factory()
                setattr(self, spec.name, default)

    async def submit(self, request: Request) -> Response:
        model = request.path_params["model"]
        submission = Submission(model, dict(request.headers), await request.json())
        self.submissions.append(submission)
        await _pause(self.submit_delay)
        if self.submit_error is not None and (
                self.submit_failures is None or len(self.submissions) <= self.submit_failures):
            status, body, headers = self.submit_error
            return JSONResponse(body, status_code=status, headers=headers)
        unreadable = await _fetch_inputs(submission)
        if unreadable is not None:
            return unreadable
        request_id = str(uuid.uuid4())
        self.accepted.append(request_id)
        # Like fal: the queue URLs name the app (owner/alias), not the endpoint path.
        root = f"{self.queue_base or self.base_url}/{'/'.join(model.split('/')[:2])}/requests/{request_id}"
        return JSONResponse({"request_id": request_id, "response_url": root,
                             "status_url": root + "/status", "cancel_url": root + "/cancel"})

    async def status(self, request: Request) -> Response:
        self.status_queries.append(request.url.query)
        self.status_auth.append(request.headers.get("authorization", ""))
        polls = len(self.status_queries)
        if polls <= self.status_failures:
            return JSONResponse({"detail": "Service temporarily unavailable"}, status_code=503)
        state = self.states[min(polls - self.status_failures, len(self.states)) - 1]
        if state == "COMPLETED" and self.final_status is not None:
            return JSONResponse(self.final_status)
        body: dict[str, Any] = {"status": state, "response_url": str(request.url).rsplit("/", 1)[0]}
        if state == "IN_QUEUE":
            body["queue_position"] = 0
        return JSONResponse(body)

    async def result(self, request: Request) -> Response:
        self.result_reads += 1
        if self.result_error is not None:
            status, body = self.result_error
            return JSONResponse(body, status_code=status)
        count = int(self.submissions[-1].body.get("num_images", 1))
        url = self.image_url or f"{self.base_url}/files/result.png"
        height, width = RESULT.shape[:2]
        return JSONResponse({
            "images": [{"url": url, "width": width, "height": height, "content_type": "image/png"}] * count,
            "seed": 1234,
            "has_nsfw_concepts": [self.nsfw] * count,
            "prompt": self.submissions[-1].body.get("prompt", ""),
        })

    async def cancel(self, request: Request) -> Response:
        self.cancels.append(request.path_params["request_id"])
        return JSONResponse({"status": "CANCELLATION_REQUESTED"}, status_code=202)

    async def file(self, request: Request) -> Response:
        name = request.path_params["name"]
        self.file_reads.append(name)
        if name != "result.png":
            return Response("Not Found", status_code=404)
        return Response(self.result_png, media_type="image/png")

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/files/{name}", self.file, methods=["GET"]),
            Route("/{model:path}/requests/{request_id}/status", self.status, methods=["GET"]),
            Route("/{model:path}/requests/{request_id}/cancel", self.cancel, methods=["PUT"]),
            Route("/{model:path}/requests/{request_id}", self.result, methods=["GET"]),
            Route("/{model:path}", self.submit, methods=["POST"]),
        ])


async def _fetch_inputs(submission: Submission) -> Response | None:
    """Read every image the input names by URL, as fal's runners do; 422 if one fails."""
    for name, value in submission.body.items():
        refs = value if isinstance(value, list) else [value]
        if not name.endswith(("_url", "_urls")) or not all(is_image_ref(ref) for ref in refs):
            continue
        try:
            submission.inputs[name] = [await image_bytes(ref) for ref in refs]
        except ImageRefError as exc:
            return JSONResponse({"detail": [{"loc": ["body", name], "msg": str(exc),
                                             "type": "file_download_error"}]}, status_code=422)
    return None


async def _pause(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(0.01)


@contextlib.contextmanager
def running_fake_fal(fake: FakeFal | None = None) -> Iterator[FakeFal]:
    """Serve ``fake`` under uvicorn in a thread; sets and yields it with ``base_url``."""
    fake = fake or FakeFal()
    with serving(fake.app(), lifespan="off", timeout_graceful_shutdown=1) as url:
        fake.base_url = url
        yield fake
