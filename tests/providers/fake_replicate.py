"""A fake Replicate API on 127.0.0.1, speaking the predictions protocol and recording it.

Routes, as on api.replicate.com (``{base}`` is ``/v1`` here), all behind
``Authorization: Bearer <token>``::

    POST   {base}/models/{owner}/{name}/predictions   {"input": {…}} → 201 prediction
    GET    {base}/predictions/{id}                    the prediction, one step further on
    POST   {base}/predictions/{id}/cancel             the prediction, canceled
    POST   {base}/files        multipart: ``content`` (the file, with its name and content
                               type), optional ``metadata`` (JSON text) → 201 file object
                               {id, name, content_type, size, etag, checksums: {sha256},
                                metadata, created_at, expires_at, urls: {get}}
    GET    {base}/files/{id}   the file object
    DELETE {base}/files/{id}   204
    GET    /delivery/{id}/{index}.png                 result images (no auth, as a CDN)

Input values that are data URLs, http(s) URLs or ``{base}/files/{id}`` URLs are read at
submission, as Replicate does, into ``Submission.inputs``; one that cannot be read is a
422. Tests set ``fake.script`` to choose what happens next and read ``fake.submissions``,
``fake.polls``, ``fake.cancels``, ``fake.fetches``, ``fake.uploads`` and
``fake.deleted_files`` to see what retouch did.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from tests.images import gradient, png
from tests.providers.fake_inputs import ImageRefError, image_bytes, is_image_ref
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
    submit_failures: int | None = None  # how many submissions get submit_status (None: all)
    token: str = TOKEN  # the only token the fake accepts
    submit_delay: float = 0.0
    poll_status: int = 200
    output_base: str | None = None  # where result URLs point; default this server
    output_as_list: bool = True
    output_inline: bool = False  # data URLs instead of delivery URLs, as sync mode may answer
    get_url_base: str | None = None  # where urls.get points; default this server
    result_status: int = 200  # the delivery host's answer
    upload_status: int = 201  # anything else answers every file upload with that status


@dataclass
class Submission:
    model: str
    input: dict[str, Any]
    headers: dict[str, str]
    inputs: dict[str, list[bytes]] = field(default_factory=dict)  # image inputs, read

    @property
    def images(self) -> list[bytes]:
        return [image for images in self.inputs.values() for image in images]


@dataclass
class Upload:
    """One file sent to the Files API."""

    id: str
    name: str
    content_type: str
    data: bytes
    metadata: dict[str, Any]
    created_at: datetime.datetime


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
        self.uploads: list[Upload] = []
        self.upload_attempts = 0
        self.deleted_files: list[str] = []
        self._predictions: dict[str, dict[str, Any]] = {}
        self._files: dict[str, Upload] = {}

    # -- the protocol ---------------------------------------------------------------

    def _build_app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/models/{owner}/{name}/predictions")
        async def create(owner: str, name: str, request: Request) -> Response:
            if not self._authorized(request):
                return JSONResponse({"title": "Unauthenticated", "detail": "You did not pass a valid "
                                     "authentication token", "status": 401}, status_code=401)
            body = await request.json()
            submission = Submission(f"{owner}/{name}", body["input"], dict(request.headers))
            self.submissions.append(submission)
            await self._pause(self.script.submit_delay)
            if self._submission_fails():
                return JSONResponse({"detail": "upstream trouble"}, status_code=self.script.submit_status,
                                    headers=self.script.submit_headers)
            unreadable = await self._read_inputs(submission)
            if unreadable is not None:
                return unreadable
            prediction = self._new_prediction(body["input"])
            return JSONResponse(self._view(prediction), status_code=201)

        @app.get("/v1/predictions/{pid}")
        async def get(pid: str, request: Request) -> Response:
            self.polls.append(dict(request.headers))
            if not self._authorized(request):
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

        @app.post("/v1/files")
        async def upload(request: Request) -> Response:
            if not self._authorized(request):
                return JSONResponse({"detail": "Unauthenticated"}, status_code=401)
            self.upload_attempts += 1
            if self.script.upload_status != 201:
                return JSONResponse({"detail": "upload trouble"}, status_code=self.script.upload_status)
            async with request.form() as form:
                content, metadata = form.get("content"), _metadata(form.get("metadata"))
                if not isinstance(content, UploadFile) or metadata is None:
                    return JSONResponse({"detail": "send the file as a multipart part named 'content' "
                                         "and metadata, if any, as a JSON object"}, status_code=400)
                stored = Upload(uuid.uuid4().hex[:26], content.filename or "file",
                                content.content_type or "application/octet-stream", await content.read(),
                                metadata, datetime.datetime.now(datetime.UTC))
            self.uploads.append(stored)
            self._files[stored.id] = stored
            return JSONResponse(self._file_view(stored), status_code=201)

        @app.get("/v1/files/{fid}")
        async def file(fid: str, request: Request) -> Response:
            if not self._authorized(request):
                return JSONResponse({"detail": "Unauthenticated"}, status_code=401)
            if fid not in self._files:
                return JSONResponse({"detail": "Not found."}, status_code=404)
            return JSONResponse(self._file_view(self._files[fid]))

        @app.delete("/v1/files/{fid}")
        async def delete_file(fid: str, request: Request) -> Response:
            if not self._authorized(request):
                return JSONResponse({"detail": "Unauthenticated"}, status_code=401)
            if self._files.pop(fid, None) is None:
                return JSONResponse({"detail": "Not found."}, status_code=404)
            self.deleted_files.append(fid)
            return Response(status_code=204)

        @app.get("/delivery/{pid}/{index}.png")
        async def deliver(pid: str, index: int, request: Request) -> Response:
            self.fetches.append(str(request.url))
            if self.script.result_status != 200:
                return Response(b"expired", status_code=self.script.result_status)
            return Response(self._predictions[pid]["images"][index], media_type="image/png")

        return app

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.script.token}"

    def _submission_fails(self) -> bool:
        failures = self.script.submit_failures
        return self.script.submit_status != 201 and (failures is None or len(self.submissions) <= failures)

    async def _read_inputs(self, submission: Submission) -> Response | None:
        """Read every input that names an image by URL; 422 as Replicate answers if one fails."""
        for name, value in submission.input.items():
            refs = value if isinstance(value, list) else [value]
            if not refs or not all(is_image_ref(ref) for ref in refs):
                continue
            try:
                submission.inputs[name] = [await self._image(ref) for ref in refs]
            except ImageRefError as exc:
                return JSONResponse({"title": "Input validation failed", "status": 422,
                                     "detail": f"- input.{name}: {exc}"}, status_code=422)
        return None

    async def _image(self, ref: str) -> bytes:
        """A Files API URL is read from the store, as Replicate does; others are fetched."""
        own = f"{self.base_url}/v1/files/"
        if not ref.startswith(own):
            return await image_bytes(ref)
        stored = self._files.get(ref.removeprefix(own))
        if stored is None:
            raise ImageRefError(f"{ref} is not an uploaded file (deleted or never uploaded)")
        return stored.data

    def _file_view(self, stored: Upload) -> dict[str, Any]:
        return {"id": stored.id, "name": stored.name, "content_type": stored.content_type,
                "size": len(stored.data), "etag": hashlib.md5(stored.data).hexdigest(),
                "checksums": {"sha256": hashlib.sha256(stored.data).hexdigest()},
                "metadata": stored.metadata, "created_at": stored.created_at.isoformat(),
                "expires_at": (stored.created_at + datetime.timedelta(days=1)).isoformat(),
                "urls": {"get": f"{self.base_url}/v1/files/{stored.id}"}}

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


def _metadata(text: Any) -> dict[str, Any] | None:
    """The ``metadata`` part: absent is {}, anything but a JSON object is None."""
    if text is None:
        return {}
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


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
