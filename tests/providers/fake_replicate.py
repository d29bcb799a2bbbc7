"""A fake Replicate API on 127.0.0.1, speaking the predictions protocol and recording it.

Tests set ``fake.script`` to choose what happens next and read ``fake.submissions``,
``fake.polls``, ``fake.cancels`` and ``fake.fetches`` to see what retouch did.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from tests.images import gradient, png
from tests.servers import serving

TOKEN = "r8_fake_token_0123456789abcdef"


@dataclass
class Script:
    """What the fake does for the next requests; the defaults succeed at once."""

    images: list[bytes] = field(default_factory=lambda: [png(gradient())])
    polls_until_done: int = 0  # GETs answered "processing" before the final state
    status: str = "succeeded"  # the final state
    error: str | None = None
    submit_status: int = 201  # anything else answers the submission with that status
    submit_headers: dict[str, str] = field(default_factory=dict)
    submit_delay: float = 0.0
    poll_status: int = 200
    output_base: str | None = None  # where result URLs point; default this server
    output_as_list: bool = True
    output_inline: bool = False  # data URLs instead of delivery URLs, as sync mode may answer
    get_url_base: str | None = None  # where urls.get points; default this server
    result_status: int = 200  # the delivery host's answer


@dataclass
class Submission:
    model: str
    input: dict[str, Any]
    headers: dict[str, str]


class FakeReplicate:
    def __init__(self) -> None:
        self.base_url = ""
        self.stopping = threading.Event()
        self.reset()
        self.app = self._build_app()

    def reset(self) -> None:
        self.script = Script()
        self.submissions: list[Submission] = []
        self.polls: list[dict[str, str]] = []  # headers of each GET
        self.cancels: list[str] = []
        self.fetches: list[str] = []
        self._predictions: dict[str, dict[str, Any]] = {}

    # -- the protocol ---------------------------------------------------------------

    def _build_app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/models/{owner}/{name}/predictions")
        async def create(owner: str, name: str, request: Request) -> Response:
            if request.headers.get("authorization") != f"Bearer {TOKEN}":
                return JSONResponse({"title": "Unauthenticated", "detail": "You did not pass a valid "
                                     "authentication token", "status": 401}, status_code=401)
            body = await request.json()
            self.submissions.append(Submission(f"{owner}/{name}", body["input"], dict(request.headers)))
            await self._pause(self.script.submit_delay)
            if self.script.submit_status != 201:
                return JSONResponse({"detail": "upstream trouble"}, status_code=self.script.submit_status,
                                    headers=self.script.submit_headers)
            prediction = self._new_prediction(body["input"])
            return JSONResponse(self._view(prediction), status_code=201)

        @app.get("/v1/predictions/{pid}")
        async def get(pid: str, request: Request) -> Response:
            self.polls.append(dict(request.headers))
            if request.headers.get("authorization") != f"Bearer {TOKEN}":
                return JSONResponse({"detail": "Unauthenticated"}, status_code=401)
            if self.script.poll_status != 200:
                return JSONResponse({"detail": "boom"}, status_code=self.script.poll_status)
            prediction = self._predictions[pid]
            prediction["remaining"] -= 1
            return JSONResponse(self._view(prediction))

        @app.post("/v1/predictions/{pid}/cancel")
        async def cancel(pid: str) -> Response:
            self.cancels.append(pid)
            self._predictions[pid]["canceled"] = True
            return JSONResponse(self._view(self._predictions[pid]))

        @app.get("/delivery/{pid}/{index}.png")
        async def deliver(pid: str, index: int, request: Request) -> Response:
            self.fetches.append(str(request.url))
            if self.script.result_status != 200:
                return Response(b"expired", status_code=self.script.result_status)
            return Response(self._predictions[pid]["images"][index], media_type="image/png")

        return app

    def _new_prediction(self, input_: dict[str, Any]) -> dict[str, Any]:
        pid = f"p{len(self._predictions) + 1}xyz"
        count = int(input_.get("num_outputs", 1))
        first = len(self._predictions)  # each prediction gets the next images in the list
        images = [self.script.images[(first + i) % len(self.script.images)] for i in range(count)]
        prediction = {"id": pid, "remaining": self.script.polls_until_done, "images": images,
                      "canceled": False}
        self._predictions[pid] = prediction
        return prediction

    def _view(self, prediction: dict[str, Any]) -> dict[str, Any]:
        pid, script = prediction["id"], self.script
        if prediction["canceled"]:
            status = "canceled"
        elif prediction["remaining"] > 0:
            status = "processing" if prediction["remaining"] < script.polls_until_done else "starting"
        else:
            status = script.status
        output: Any = None
        if status == "succeeded":
            base = script.output_base or self.base_url
            urls = [f"{base}/delivery/{pid}/{i}.png" for i in range(len(prediction["images"]))]
            if script.output_inline:
                urls = ["data:image/png;base64," + base64.b64encode(data).decode()
                        for data in prediction["images"]]
            output = urls if script.output_as_list else urls[0]
        get_base = script.get_url_base or self.base_url
        return {"id": pid, "model": "fake", "status": status, "output": output,
                "error": script.error if status == "failed" else None,
                "urls": {"get": f"{get_base}/v1/predictions/{pid}",
                         "cancel": f"{self.base_url}/v1/predictions/{pid}/cancel"}}

    async def _pause(self, seconds: float) -> None:
        """Sleep, but let the server stop at once when the test is over."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.stopping.is_set():
            await asyncio.sleep(0.01)


@contextlib.contextmanager
def running_fake_replicate() -> Iterator[FakeReplicate]:
    """The fake on a free port of 127.0.0.1; ``fake.base_url`` is its root."""
    fake = FakeReplicate()
    with serving(fake.app, lifespan="off") as url:
        fake.base_url = url
        try:
            yield fake
        finally:
            fake.stopping.set()
