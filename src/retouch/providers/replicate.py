"""Replicate: one prediction per upstream job, polled until it ends.

Protocol (https://replicate.com/docs/reference/http)::

    POST {api_base}/models/{owner}/{name}/predictions      Authorization: Bearer <token>
         Prefer: wait=60                                   # hold the answer up to 60 s
         Cancel-After: 300s                                # Replicate cancels it past our deadline
         {"input": {"prompt", "<image_field>", "seed", "output_format", "aspect_ratio", ...}}
    201  {"id", "status", "output", "error", "urls": {"get", "cancel"}}

``status`` is ``starting`` or ``processing`` until it is ``succeeded``, ``failed``,
``canceled`` or ``aborted``; until then we poll ``GET urls.get`` (or
``/predictions/{id}``), never submitting again: a second submission bills a second
image. On our deadline or when the client goes away we ``POST urls.cancel``.
``output`` is one URL or a list (on ``*.replicate.delivery``; data URLs too in sync mode).

Input images go as signed links to retouch's storage when it has a public URL
(``transport.InputLinks``); otherwise inline as data URLs up to ``files_threshold``
bytes (256 KiB, as Replicate advises) and above that through Replicate's Files API::

    POST {api_base}/files      multipart: content=(name, bytes, type), metadata (JSON)
    201  {"id", "urls": {"get": "{api_base}/files/{id}"}, "expires_at", …}
    DELETE {api_base}/files/{id}                    # when the job has ended

``urls.get`` is what the prediction's input carries.

Each model family names its inputs differently, so models.yaml says how::

    - id: flux-kontext-pro
      provider: replicate
      model: black-forest-labs/flux-kontext-pro
      image_field: input_image          # one image, as a data URL
    - id: seedream-4
      provider: replicate
      model: bytedance/seedream-4
      image_field: image_input          # a list of data URLs
      max_input_images: 10
      output_format_field: null         # seedream picks its own encoding

Other keys: ``image_list`` (send a list even for one image; default: when
``max_input_images`` > 1), ``size_field`` (the aspect-ratio input, default
``aspect_ratio``; null when the model has none, making ``size`` a 400),
``n_field`` (e.g. ``num_outputs``; without it ``n`` images are made by ``n`` predictions
one after another, seeds ``seed``, ``seed+1``, …), ``wait`` (seconds for ``Prefer: wait``,
at most 60), ``poll_interval`` (first pause between polls; it grows to four times that),
``max_n``, ``supports_generation``. The deadline (``timeout``) applies to each prediction.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import re
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

import anyio
import httpx
from pydantic import BaseModel, ConfigDict, Field

from retouch.errors import (
    InvalidRequestError,
    RetouchError,
    UpstreamError,
    UpstreamTimeoutError,
)
from retouch.providers.base import EditJob, EditResult, OutputImage
from retouch.providers.hosted import (
    HostedEditModel,
    closest_ratio,
    refuse_two_shapes,
    sniff_content_type,
    unused_quality,
)
from retouch.providers.transport import Payload, data_url, portable

log = logging.getLogger("retouch.providers.replicate")

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "canceled", "aborted"})
ASPECT_RATIOS = ("21:9", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16", "9:21")
# Replicate's image models mostly take jpg/png; webp is made by retouch from lossless PNG.
UPSTREAM_FORMATS = {"png": "png", "jpeg": "jpg", "webp": "png"}
MAX_WAIT_S = 60
FILES_THRESHOLD = 256 * 1024  # larger inputs go through the Files API, not data URLs
CANCEL_TIMEOUT_S = 10.0
# "safety" as a word: a failure about the safety_tolerance input is no content block.
_BLOCKED = re.compile(r"nsfw|\bsafety\b|sensitive|flagged|\bE005\b", re.IGNORECASE)


class ReplicateOptions(BaseModel):
    """Fields forwarded into ``input`` as they are, for the models that take them."""

    model_config = ConfigDict(extra="forbid")

    aspect_ratio: str | None = None  # e.g. "match_input_image"; instead of size
    safety_tolerance: int | None = Field(default=None, ge=0, le=6)
    prompt_upsampling: bool | None = None
    guidance: float | None = None
    num_inference_steps: int | None = Field(default=None, ge=1, le=200)
    negative_prompt: str | None = None


@dataclass(frozen=True)
class InputSchema:
    """How one Replicate model names its inputs (from models.yaml)."""

    image_field: str = "input_image"
    image_list: bool = False
    size_field: str | None = "aspect_ratio"
    n_field: str | None = None
    output_format_field: str | None = "output_format"

    @classmethod
    def from_config(cls, config: dict[str, Any], max_input_images: int) -> InputSchema:
        def field(key: str, default: str | None) -> str | None:
            if key not in config:
                return default
            return str(config[key]) if config[key] else None  # null: the model has no such input

        return cls(
            image_field=str(config.get("image_field") or cls.image_field),
            image_list=bool(config.get("image_list", max_input_images > 1)),
            size_field=field("size_field", cls.size_field),
            n_field=field("n_field", cls.n_field),
            output_format_field=field("output_format_field", cls.output_format_field),
        )


@dataclass(frozen=True)
class Prediction:
    id: str
    status: str
    output: Any = None
    error: str = ""
    get_url: str = ""
    cancel_url: str = ""


# -- translation: no network below this line until the class -----------------------------


def check_job(job: EditJob, schema: InputSchema, model_id: str) -> None:
    """Reject what this model would silently get wrong; each error names its parameter."""
    if job.background == "transparent":
        raise InvalidRequestError(
            f"{model_id} cannot make transparent backgrounds; send background=opaque or auto.",
            param="background")
    if job.size and schema.size_field is None:
        raise InvalidRequestError(
            f"{model_id} takes no size or aspect ratio; leave size out (it follows the input image).",
            param="size")
    refuse_two_shapes(job.size, getattr(job.options, "aspect_ratio", None))
    if len(job.images) > 1 and not schema.image_list:
        raise InvalidRequestError(
            f"{model_id} takes one image in {schema.image_field!r}; {len(job.images)} were sent.",
            param="image", code="too_many_images")




def nearest_aspect_ratio(width: int, height: int, choices: tuple[str, ...] = ASPECT_RATIOS) -> str:
    """The listed ratio closest to width:height."""
    return closest_ratio(width, height, choices)

def build_input(job: EditJob, schema: InputSchema, references: list[str] | None = None) -> dict[str, Any]:
    """The prediction's ``input`` for ``job`` (``job.n`` goes to ``n_field`` if any).
    ``references`` are the images as URLs; without them, data URLs of the images."""
    fields: dict[str, Any] = {"prompt": job.prompt}
    if job.images:
        urls = references if references is not None else [
            data_url(portable(image)) for image in job.images]
        fields[schema.image_field] = urls if schema.image_list else urls[0]
    if job.size and schema.size_field:
        fields[schema.size_field] = nearest_aspect_ratio(*job.size)
    if job.seed is not None:
        fields["seed"] = job.seed
    if schema.output_format_field:
        fields[schema.output_format_field] = UPSTREAM_FORMATS[job.output_format]
    if schema.n_field:
        fields[schema.n_field] = job.n
    if job.options is not None:
        fields.update(job.options.model_dump(exclude_none=True))
    return fields


def build_request(job: EditJob, schema: InputSchema, *, model: str, wait: int, deadline: float,
                  references: list[str] | None = None) -> tuple[str, str, dict[str, Any]]:
    """``(method, path, httpx kwargs)`` creating one prediction; auth is added by the caller."""
    headers = {"Prefer": f"wait={wait}", "Cancel-After": f"{max(1, math.ceil(deadline))}s"}
    body = {"input": build_input(job, schema, references)}
    return "POST", f"/models/{model}/predictions", {"json": body, "headers": headers}


def file_upload(payload: Payload, index: int) -> dict[str, Any]:
    """httpx kwargs for ``POST /files`` with one input image."""
    extension = payload.content_type.split("/")[1]
    return {"files": {"content": (f"input-{index}.{extension}", payload.data, payload.content_type)}}


def parse_file(body: Any) -> tuple[str, str]:
    """``(id, urls.get)`` of an uploaded file, or a 502 when the answer is not one."""
    urls = body.get("urls") if isinstance(body, dict) else None
    if not isinstance(urls, dict) or not isinstance(body.get("id"), str) \
            or not isinstance(urls.get("get"), str) or not urls["get"].startswith(("https://", "http://")):
        raise UpstreamError("replicate answered the file upload with something that is not a file.")
    return body["id"], urls["get"]


def parse_prediction(body: Any) -> Prediction:
    """A prediction object, or a 502 when the answer is not one."""
    if not isinstance(body, dict) or not isinstance(body.get("id"), str) or not body["id"] \
            or not isinstance(body.get("status"), str):
        raise UpstreamError("replicate answered with something that is not a prediction.")
    urls = body.get("urls") if isinstance(body.get("urls"), dict) else {}
    return Prediction(id=body["id"], status=body["status"], output=body.get("output"),
                      error=str(body.get("error") or ""), get_url=str(urls.get("get") or ""),
                      cancel_url=str(urls.get("cancel") or ""))


def output_urls(prediction: Prediction) -> list[str]:
    """The result URLs of a succeeded prediction: ``output`` is one URL or a list of them."""
    output = prediction.output
    urls = [output] if isinstance(output, str) else output
    if not isinstance(urls, list) or not urls or not all(isinstance(u, str) and u for u in urls):
        raise UpstreamError(f"replicate prediction {prediction.id} succeeded without an image URL.")
    return urls


def read_json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise UpstreamError(f"replicate answered HTTP {response.status_code} with a body that is not JSON.") from None


def decode_data_url(url: str) -> bytes:
    header, _, payload = url.partition(",")
    try:
        return base64.b64decode(payload, validate=True) if header.endswith(";base64") else b""
    except (binascii.Error, ValueError):
        return b""


@dataclass
class _Tracked:
    """The prediction we are responsible for, once Replicate has accepted it."""

    prediction: Prediction | None = None

    @property
    def running(self) -> bool:
        return self.prediction is not None and self.prediction.status not in TERMINAL_STATUSES


class ReplicateEditModel(HostedEditModel):
    """A model on Replicate, run through its official-model predictions endpoint."""

    provider = "replicate"
    default_api_base = "https://api.replicate.com/v1"
    default_api_key_env = "REPLICATE_API_TOKEN"
    result_hosts = frozenset({"replicate.delivery"})  # and pbxt.replicate.delivery, …
    accepts_image_links = True
    Options = ReplicateOptions
    max_input_images = 1
    supports_generation = True  # Kontext and Seedream both take a prompt alone
    supports_mask = False
    max_n = 4
    ignored_params = frozenset({"input_fidelity", "user"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_input_images = int(self.config.get("max_input_images", self.max_input_images))
        self.max_n = int(self.config.get("max_n", self.max_n))
        self.supports_generation = bool(self.config.get("supports_generation", self.supports_generation))
        self.schema = InputSchema.from_config(self.config, self.max_input_images)
        self.wait = min(MAX_WAIT_S, max(1, int(self.config.get("wait", MAX_WAIT_S))))
        self.poll_interval = float(self.config.get("poll_interval", 0.5))
        self.files_threshold = int(self.config.get("files_threshold", FILES_THRESHOLD))

    async def edit(self, job: EditJob) -> EditResult:
        """Make ``job.n`` images: one prediction with ``n_field``, else ``n`` in sequence."""
        check_job(job, self.schema, self.id)
        dropped = unused_quality(job)
        if dropped:
            log.info("model %s: Replicate has no input for %s; dropped", self.id, ", ".join(dropped))
        calls = [job] if self.schema.n_field else [
            replace(job, n=1, seed=None if job.seed is None else job.seed + i) for i in range(job.n)]
        uploaded: list[str] = []
        try:
            references = await self._references(job, uploaded)
            images: list[OutputImage] = []
            for call in calls:
                prediction = await self._predict(call, references)
                images += [await self._download(url) for url in output_urls(prediction)]
        finally:
            await self._delete_files(uploaded)
        if len(images) < job.n:
            raise UpstreamError(f"replicate returned {len(images)} of the {job.n} images asked for.")
        return EditResult(images=images[:job.n], extra={"dropped_params": dropped})

    # -- input images -------------------------------------------------------------------

    async def _references(self, job: EditJob, uploaded: list[str]) -> list[str]:
        """The images as the input carries them: signed links, data URLs or uploaded files
        (whose ids are added to ``uploaded``, to be deleted when the job ends)."""
        payloads = await anyio.to_thread.run_sync(lambda: [portable(i) for i in job.images])
        if self.links_for(job) is not None:
            return await self.image_references(job, payloads)
        references = []
        for index, payload in enumerate(payloads):
            if len(payload.data) <= self.files_threshold:
                references.append(await self.inline_reference(payload))
                continue
            response = await self.request("POST", "/files", takes_job=False, headers=self._auth(),
                                          **file_upload(payload, index))
            file_id, url = parse_file(read_json(response))
            uploaded.append(file_id)
            references.append(url)
        return references

    async def _delete_files(self, file_ids: list[str]) -> None:
        with anyio.move_on_after(CANCEL_TIMEOUT_S, shield=True):
            for file_id in file_ids:
                try:
                    await self.request("DELETE", f"/files/{quote(file_id, safe='')}",
                                       takes_job=False, headers=self._auth())
                except RetouchError as exc:  # Replicate expires uploads on its own
                    log.warning("model %s: could not delete replicate file %s: %s",
                                self.id, file_id, exc.message)

    # -- one prediction -----------------------------------------------------------------

    async def _predict(self, job: EditJob, references: list[str]) -> Prediction:
        """Submit once, poll to the end; cancel upstream if we give up on it."""
        tracked = _Tracked()
        try:
            with anyio.fail_after(self.timeout):
                submitted = await self._submit(job, references, tracked)
                prediction = await self._wait_for(submitted, tracked)
        except TimeoutError:
            await self._cancel(tracked)
            raise UpstreamTimeoutError(
                f"replicate did not finish within {self.timeout:g} s (timeout in models.yaml).") from None
        except BaseException:  # the client went away, or polling failed: stop the billing
            await self._cancel(tracked)
            raise
        return self._succeeded(prediction)

    async def _submit(self, job: EditJob, references: list[str], tracked: _Tracked) -> Prediction:
        method, path, kwargs = build_request(job, self.schema, model=self.upstream_model,
                                             wait=min(self.wait, max(1, math.ceil(self.timeout))),
                                             deadline=self.timeout, references=references)
        kwargs["headers"].update(self._auth())
        tracked.prediction = parse_prediction(read_json(await self.request(method, path, **kwargs)))
        return tracked.prediction

    async def _wait_for(self, prediction: Prediction, tracked: _Tracked) -> Prediction:
        interval = self.poll_interval
        while prediction.status not in TERMINAL_STATUSES:
            await anyio.sleep(interval)
            interval = min(interval * 1.5, self.poll_interval * 4)
            url = self._own_url(prediction.get_url, f"/predictions/{quote(prediction.id, safe='')}")
            tracked.prediction = prediction = parse_prediction(
                read_json(await self.request("GET", url, headers=self._auth())))
        return prediction

    async def _cancel(self, tracked: _Tracked) -> None:
        if not tracked.running:
            return
        prediction = tracked.prediction
        url = self._own_url(prediction.cancel_url, f"/predictions/{quote(prediction.id, safe='')}/cancel")
        with anyio.move_on_after(CANCEL_TIMEOUT_S, shield=True):
            try:
                await self.request("POST", url, headers=self._auth())
                log.info("model %s: canceled replicate prediction %s", self.id, prediction.id)
            except RetouchError as exc:
                log.warning("model %s: could not cancel replicate prediction %s: %s",
                            self.id, prediction.id, exc.message)

    def _succeeded(self, prediction: Prediction) -> Prediction:
        if prediction.status == "succeeded":
            return prediction
        if prediction.status == "failed" and _BLOCKED.search(prediction.error):
            raise self.content_blocked(prediction.error)
        if prediction.status == "failed":
            raise UpstreamError(f"replicate prediction {prediction.id} failed: "
                                f"{prediction.error or 'no reason given'}")
        raise UpstreamError(
            f"replicate {prediction.status} prediction {prediction.id} before it finished "
            "(its Cancel-After deadline passed, or it was canceled on replicate.com).")

    # -- helpers ------------------------------------------------------------------------

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key()}"}

    def _own_url(self, url: str, fallback_path: str) -> str:
        """``url`` when it points at our API base, else ``fallback_path`` on the base: the
        token is only ever sent to the host it was configured for."""
        base = httpx.URL(self.api_base)
        try:
            target = httpx.URL(url) if url else None
        except httpx.InvalidURL:
            target = None
        if target is not None and (target.scheme, target.netloc) == (base.scheme, base.netloc):
            return url
        return fallback_path

    async def _download(self, url: str) -> OutputImage:
        data = decode_data_url(url) if url.startswith("data:") else await self.fetch_result(url)
        content_type = sniff_content_type(data)
        if content_type is None:
            raise UpstreamError("replicate returned a result that is not a PNG, JPEG or WebP image.")
        return OutputImage(data=data, content_type=content_type)
