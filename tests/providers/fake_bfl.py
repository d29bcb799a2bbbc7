"""A fake Black Forest Labs API on 127.0.0.1: submit, poll ``get_result``, fetch the sample.

``input_image`` and ``input_image_2`` … ``_4`` may be bare base64, a data URL or an
http(s) URL, as BFL takes them; each is read at submission into ``Submission.images``
(one that cannot be read is a 422). Tests set ``fake.script`` to choose what happens
next and read ``fake.submissions``, ``fake.polls`` and ``fake.fetches`` to see what
retouch did.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from tests.images import gradient, png
from tests.providers.fake_inputs import ImageRefError, image_bytes, is_image_ref
from tests.servers import serving

KEY = "bfl_fake_key_0123456789abcdef"
INPUT_IMAGES = ("input_image", "input_image_2", "input_image_3", "input_image_4")


@dataclass
class Script:
    """What the fake does for the next requests; the defaults succeed on the first poll."""

    images: list[bytes] = field(default_factory=lambda: [png(gradient())])
    polls_until_done: int = 0  # polls answered "Pending" before the final status
    status: str = "Ready"  # the final status
    details: dict[str, Any] | None = None
    submit_status: int = 200
    submit_headers: dict[str, str] = field(default_factory=dict)
    submit_failures: int | None = None  # how many submissions get submit_status (None: all)
    key: str = KEY  # the only key the fake accepts
    submit_delay: float = 0.0
    poll_status: int = 200
    polling_base: str | None = ""  # where polling_url points ("" this server, None: left out)
    sample_base: str | None = None  # where result.sample points; default this server
    sample_status: int = 200  # the delivery host's answer


@dataclass
class Submission:
    model: str
    body: dict[str, Any]
    headers: dict[str, str]
    images: list[bytes] = field(default_factory=list)  # input_image, input_image_2, …, read


class FakeBfl:
    def __init__(self) -> None:
        self.base_url = ""
        self.stopping = threading.Event()
        self.reset()
        self.app = self._build_app()

    def reset(self) -> None:
        self.script = Script()
        self.submissions: list[Submission] = []
        self.polls: list[dict[str, str]] = []  # headers of each poll
        self.fetches: list[dict[str, str]] = []  # URL and headers of each sample download
        self._jobs: dict[str, dict[str, Any]] = {}

    def _build_app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/{model}")
        async def submit(model: str, request: Request) -> Response:
            if request.headers.get("x-key") != self.script.key:
                return JSONResponse({"detail": "Invalid API key"}, status_code=403)
            body = await request.json()
            submission = Submission(model, body, dict(request.headers))
            self.submissions.append(submission)
            await self._pause(self.script.submit_delay)
            failures = self.script.submit_failures
            if self.script.submit_status != 200 and (failures is None or len(self.submissions) <= failures):
                return JSONResponse({"detail": "upstream trouble"}, status_code=self.script.submit_status,
                                    headers=self.script.submit_headers)
            try:
                submission.images = [await _input_image(body[name]) for name in INPUT_IMAGES if name in body]
            except ImageRefError as exc:
                return JSONResponse({"detail": f"input_image: {exc}"}, status_code=422)
            jid = f"job{len(self._jobs) + 1}"
            self._jobs[jid] = {"remaining": self.script.polls_until_done,
                               "image": self.script.images[len(self._jobs) % len(self.script.images)]}
            answer = {"id": jid}
            if self.script.polling_base is not None:
                answer["polling_url"] = f"{self.script.polling_base or self.base_url}/v1/get_result?id={jid}"
            return JSONResponse(answer)

        @app.get("/v1/get_result")
        async def get_result(id: str, request: Request) -> Response:  # noqa: A002 - BFL's name
            self.polls.append(dict(request.headers))
            if request.headers.get("x-key") != self.script.key:
                return JSONResponse({"detail": "Invalid API key"}, status_code=403)
            if self.script.poll_status != 200:
                return JSONResponse({"detail": "boom"}, status_code=self.script.poll_status)
            job = self._jobs.get(id)
            if job is None:
                return JSONResponse({"id": id, "status": "Task not found"})
            job["remaining"] -= 1
            if job["remaining"] >= 0:
                return JSONResponse({"id": id, "status": "Pending", "result": None, "progress": 0.5})
            answer: dict[str, Any] = {"id": id, "status": self.script.status, "result": None,
                                      "details": self.script.details}
            if self.script.status == "Ready":
                base = self.script.sample_base or self.base_url
                answer["result"] = {"sample": f"{base}/delivery/{id}/sample.png?se=short-lived",
                                    "prompt": "x", "seed": 1}
            return JSONResponse(answer)

        @app.get("/delivery/{jid}/sample.png")
        async def deliver(jid: str, request: Request) -> Response:
            self.fetches.append({"url": str(request.url), **request.headers})
            if self.script.sample_status != 200:
                return Response(b"<Error>AuthenticationFailed</Error>", status_code=self.script.sample_status)
            return Response(self._jobs[jid]["image"], media_type="image/png")

        return app

    async def _pause(self, seconds: float) -> None:
        """Sleep, but let the server stop at once when the test is over."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.stopping.is_set():
            await asyncio.sleep(0.01)


async def _input_image(value: Any) -> bytes:
    """A URL is fetched, anything else read as bare base64."""
    if is_image_ref(value):
        return await image_bytes(value)
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageRefError("neither a URL nor valid base64") from exc


@contextlib.contextmanager
def running_fake_bfl() -> Iterator[FakeBfl]:
    """The fake on a free port of 127.0.0.1; ``fake.base_url`` is its root."""
    fake = FakeBfl()
    with serving(fake.app, lifespan="off") as url:
        fake.base_url = url
        try:
            yield fake
        finally:
            fake.stopping.set()
