"""``fal``: image edits through fal.ai's queue API.

The protocol (docs.fal.ai, "Queue")::

    POST {api_base}/{model}          Authorization: Key $FAL_KEY; the model's JSON input
      → {request_id, status_url, response_url, cancel_url}
    GET  {status_url}?logs=0         → {status: IN_QUEUE | IN_PROGRESS | COMPLETED, …}
    GET  {response_url}              → {images: [{url, width, height, content_type}],
                                        seed, has_nsfw_concepts?}
    PUT  {cancel_url}                when we stop waiting: our deadline, or the client left

A job is submitted once; after fal accepts it we only poll, never resubmit (each
submission bills new images). The key travels only to the api_base origin and fal's own
hosts: a status, response or cancel URL anywhere else is refused unfollowed. Failed
jobs answer the response URL with an error status and ``detail``, a string or a list of
``{loc, msg, type}``; ``type: content_policy_violation`` is a content block, and so is
an image flagged in ``has_nsfw_concepts`` (fal blanks those).

Input per model family, from ``models.yaml``::

    - id: flux-kontext-pro
      provider: fal
      model: fal-ai/flux-pro/kontext
      image_field: image_url        # image_url (one image) | image_urls (several)
      size_field: aspect_ratio      # image_size ({width, height}) | aspect_ratio | none
      supports_mask: false          # true: the mask goes as mask_url (white = edit)
      max_input_images: 1           # default 1 for image_url, 10 for image_urls
      max_n: 4                      # most images one job returns (num_images)
      poll_interval: 0.5            # first wait between status checks, growing to
      max_poll_interval: 2          # this one

Images travel as base64 ``data:`` URLs, which every fal model accepts, or as signed
links to retouch's storage when it has a public URL (``transport.InputLinks``).
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from retouch.errors import (
    InvalidRequestError,
    RetouchError,
    UpstreamError,
    UpstreamTimeoutError,
)
from retouch.inputs import InputImage
from retouch.providers.base import EditJob, EditResult, OutputImage
from retouch.providers.hosted import (
    HostedEditModel,
    closest_ratio,
    refuse_two_shapes,
    sniff_content_type,
    unused_quality,
)
from retouch.providers.registry import ConfigError
from retouch.providers.transport import Payload, data_url, portable

log = logging.getLogger("retouch.providers.fal")

IMAGE_FIELDS = ("image_url", "image_urls")
SIZE_FIELDS = ("image_size", "aspect_ratio", "none")
ASPECT_RATIOS = ("21:9", "16:9", "4:3", "3:2", "1:1", "2:3", "3:4", "9:16", "9:21")
# Hosts (and their subdomains) that may receive the key: fal's queue, runners and CDN.
QUEUE_DOMAINS = ("fal.run", "fal.ai", "fal.media")
_WAITING = frozenset({"IN_QUEUE", "IN_PROGRESS"})
# A status check that fails this way is retried at the next poll: the job runs on regardless.
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_MAX_POLL_INTERVAL_S = 2.0
_CANCEL_TIMEOUT_S = 5.0
_CONTENT_POLICY = "content_policy_violation"


class FalOptions(BaseModel):
    """Fields fal models take beyond the common ones; each is forwarded as it is named."""

    model_config = ConfigDict(extra="forbid")

    guidance_scale: float | None = Field(default=None, ge=0, le=50)
    num_inference_steps: int | None = Field(default=None, ge=1, le=200)
    aspect_ratio: str | None = Field(default=None, pattern=r"^(auto|\d{1,2}:\d{1,2})$")
    enable_safety_checker: bool | None = None
    safety_tolerance: int | None = Field(default=None, ge=1, le=6)
    negative_prompt: str | None = None
    acceleration: str | None = Field(default=None, pattern=r"^(none|regular|high)$")


@dataclass(frozen=True)
class ModelShape:
    """How one fal model takes its input, from its ``models.yaml`` entry."""

    image_field: str = "image_url"
    size_field: str = "aspect_ratio"
    supports_mask: bool = False

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ModelShape:
        image_field = str(config.get("image_field") or "image_url")
        size_field = str(config.get("size_field") or "aspect_ratio")
        if image_field not in IMAGE_FIELDS:
            raise ConfigError(f"fal: image_field {image_field!r} is not one of {', '.join(IMAGE_FIELDS)}")
        if size_field not in SIZE_FIELDS:
            raise ConfigError(f"fal: size_field {size_field!r} is not one of {', '.join(SIZE_FIELDS)}")
        return cls(image_field, size_field, bool(config.get("supports_mask", False)))


@dataclass(frozen=True)
class QueuedJob:
    """A job fal accepted: from here on it is polled, never submitted again."""

    request_id: str
    status_url: str
    response_url: str
    cancel_url: str


@dataclass(frozen=True)
class FalAnswer:
    """The parsed response of a completed job."""

    image_urls: list[str]
    seed: int | None = None
    flagged: int = 0  # images fal's safety checker flagged (and blanked)


# -- request: pure translation ----------------------------------------------------------


def build_arguments(job: EditJob, shape: ModelShape,
                    references: list[str] | None = None) -> tuple[dict[str, Any], list[str]]:
    """The model's JSON input for ``job``, and the names of the request fields dropped.

    ``references`` are the images, then the mask if any, as the request carries them
    (URLs); without them the images go as data URLs (encoding them: run it in a worker
    thread). Raises ``InvalidRequestError`` for a field that would change the result but
    that the model cannot honour.
    """
    check_inputs(job, shape)
    if references is None:
        references = [data_url(payload) for payload in input_payloads(job)]
    arguments: dict[str, Any] = {
        "prompt": job.prompt,
        "num_images": job.n,
        # webp is not offered by every fal model: ask for lossless PNG and transcode.
        "output_format": "jpeg" if job.output_format == "jpeg" else "png",
    }
    arguments.update(image_arguments(references, shape, has_mask=job.mask is not None))
    arguments.update(size_arguments(job.size, shape))
    if job.seed is not None:
        arguments["seed"] = job.seed
    arguments.update(option_arguments(job.options))
    dropped = unused_quality(job)
    return arguments, dropped


def check_inputs(job: EditJob, shape: ModelShape) -> None:
    """Early 400s for what fal cannot do, each naming the parameter."""
    if job.background == "transparent":
        raise InvalidRequestError(
            "background='transparent' is not possible with fal's edit models: their results "
            "are opaque. Send background=auto or opaque.", param="background")
    if job.size is not None and shape.size_field == "none":
        raise InvalidRequestError(
            f"size={job.size[0]}x{job.size[1]}: this model takes no output size (the result "
            "follows the first image). Leave size out.", param="size")
    refuse_two_shapes(job.size, getattr(job.options, "aspect_ratio", None))


def image_arguments(references: list[str], shape: ModelShape, *, has_mask: bool) -> dict[str, Any]:
    urls, mask = (references[:-1], references[-1]) if has_mask else (references, None)
    single = shape.image_field == "image_url"
    arguments: dict[str, Any] = {"image_url": urls[0]} if single else {"image_urls": urls}
    if mask is not None:
        arguments["mask_url"] = mask
    return arguments


def input_payloads(job: EditJob) -> list[Payload]:
    """The images as fal reads them, then the mask in fal's form. May decode: off the loop."""
    payloads = [portable(image) for image in job.images]
    return payloads + ([fal_mask(job.mask)] if job.mask is not None else [])


def fal_mask(mask: InputImage) -> Payload:
    """OpenAI masks mark the area to edit as transparent; fal's mark it white."""
    pixels = mask.pixels()  # RGB or RGBA
    if pixels.shape[2] == 4:
        gray = np.where(pixels[..., 3] < 128, 255, 0).astype(np.uint8)
    else:  # no alpha: already black and white, the fal way
        gray = pixels.max(axis=2)
    buffer = io.BytesIO()
    Image.fromarray(gray, "L").save(buffer, "PNG")
    return Payload(buffer.getvalue(), "image/png")


def size_arguments(size: tuple[int, int] | None, shape: ModelShape) -> dict[str, Any]:
    if size is None or shape.size_field == "none":
        return {}
    width, height = size
    if shape.size_field == "image_size":
        return {"image_size": {"width": width, "height": height}}
    return {"aspect_ratio": nearest_aspect_ratio(width, height)}


def nearest_aspect_ratio(width: int, height: int) -> str:
    """The ratio of ``ASPECT_RATIOS`` closest to width:height."""
    return closest_ratio(width, height, ASPECT_RATIOS)

def option_arguments(options: BaseModel | None) -> dict[str, Any]:
    fields = options.model_dump(exclude_none=True) if options is not None else {}
    if "safety_tolerance" in fields:
        fields["safety_tolerance"] = str(fields["safety_tolerance"])  # fal's enum is "1".."6"
    return fields


# -- answers: pure translation ----------------------------------------------------------


def parse_queued(body: Any) -> QueuedJob:
    """The submission's answer; an answer without the queue URLs is a 502."""
    fields = ("request_id", "status_url", "response_url", "cancel_url")
    missing = [f for f in fields if not (isinstance(body, dict) and isinstance(body.get(f), str) and body[f])]
    if missing:
        raise UpstreamError(f"fal accepted the job but its answer lacks {', '.join(missing)}.")
    return QueuedJob(*(body[f] for f in fields))


def parse_status(body: Any) -> bool:
    """True once the job completed; False while it waits or runs; 502 if it failed."""
    body = body if isinstance(body, dict) else {}
    state = str(body.get("status", "")).upper()
    if state in _WAITING:
        return False
    error = body.get("error")
    if state == "COMPLETED" and not error:
        return True
    reason = error or body.get("detail") or "no reason given"
    raise UpstreamError(f"fal reports the job {state or 'in an unknown state'}: {str(reason)[:300]}.")


def parse_result(body: Any) -> FalAnswer:
    """The image URLs of a completed job; none at all is a 502."""
    body = body if isinstance(body, dict) else {}
    images = body.get("images") if isinstance(body.get("images"), list) else []
    urls = [item["url"] for item in images if isinstance(item, dict) and isinstance(item.get("url"), str)]
    flags = body.get("has_nsfw_concepts") if isinstance(body.get("has_nsfw_concepts"), list) else []
    flagged = sum(1 for flag in flags if flag is True)
    if not urls and not flagged:
        raise UpstreamError("fal completed the job but returned no images.")
    seed = body.get("seed") if isinstance(body.get("seed"), int) else None
    return FalAnswer(urls, seed, flagged)


def problems(response: httpx.Response) -> list[tuple[str, str]]:
    """fal's ``detail``, as ``(type, message)`` pairs: a string, or FastAPI-style a list."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return []
    if isinstance(detail, str):
        return [(str(response.headers.get("x-fal-error-type", "")), detail)]
    found = []
    for item in detail if isinstance(detail, list) else []:
        if isinstance(item, dict):
            where = ".".join(str(p) for p in item.get("loc", []) if p != "body")
            message = str(item.get("msg", ""))
            found.append((str(item.get("type", "")), f"{where}: {message}" if where else message))
    return found


def decode_data_url(url: str) -> bytes:
    """A ``data:…;base64,…`` result (fal's sync mode answers this way)."""
    header, _, payload = url.partition(",")
    try:
        if not header.endswith(";base64"):
            raise ValueError("not base64")
        return base64.b64decode(payload, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise UpstreamError("fal returned a result data URL that is not valid base64.") from exc


# -- the backend ------------------------------------------------------------------------


class FalEditModel(HostedEditModel):
    """Edits with a model hosted on fal.ai, through its queue."""

    provider = "fal"
    default_api_base = "https://queue.fal.run"
    default_api_key_env = "FAL_KEY"
    result_hosts = frozenset({"fal.media", "fal.run", "fal.ai", "storage.googleapis.com"})
    accepts_image_links = True
    Options = FalOptions
    max_n = 4
    output_formats = ("png", "jpeg", "webp")
    ignored_params = frozenset({"input_fidelity", "user"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shape = ModelShape.from_config(self.config)
        self.supports_mask = self.shape.supports_mask
        several = self.shape.image_field == "image_urls"
        self.max_input_images = int(self.config.get("max_input_images") or (10 if several else 1))
        self.max_n = int(self.config.get("max_n") or self.max_n)
        self.poll_interval = float(self.config.get("poll_interval") or 0.5)
        self.max_poll_interval = max(
            self.poll_interval, float(self.config.get("max_poll_interval") or _MAX_POLL_INTERVAL_S))

    async def edit(self, job: EditJob) -> EditResult:
        check_inputs(job, self.shape)  # before any image is encoded or lent
        payloads = await anyio.to_thread.run_sync(input_payloads, job)
        references = await self.image_references(job, payloads)
        arguments, dropped = build_arguments(job, self.shape, references)
        if dropped:
            log.info("model %s: fal has no use for %s; dropped", self.id, ", ".join(dropped))
        deadline = anyio.current_time() + self.timeout
        queued = await self.submit(arguments)
        try:
            with anyio.fail_after(max(deadline - anyio.current_time(), 0.0)):
                answer = await self.wait_for_answer(queued)
                images = await self.download(answer, job.n)
        except TimeoutError:
            await self.cancel(queued)
            raise UpstreamTimeoutError(
                f"fal did not finish within {self.timeout:g} s; the job was cancelled. "
                f"Raise 'timeout' for {self.id} in models.yaml if it needs longer.") from None
        except anyio.get_cancelled_exc_class():
            await self.cancel(queued)  # the client went away: stop paying for the job
            raise
        extra = {"dropped_params": dropped, "request_id": queued.request_id, "seed": answer.seed}
        return EditResult(images=images, extra=extra)

    # -- the queue ----------------------------------------------------------------------

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Key {self.api_key()}", "Accept": "application/json"}

    async def submit(self, arguments: dict[str, Any]) -> QueuedJob:
        """One POST; fal's answer names the URLs to follow, each checked before use."""
        response = await self.request("POST", f"/{self.upstream_model}", json=arguments,
                                      headers=self.headers())
        queued = parse_queued(_json(response))
        for url in (queued.status_url, queued.response_url, queued.cancel_url):
            self.check_queue_url(url)
        log.info("fal accepted request %s for %s", queued.request_id, self.upstream_model)
        return queued

    def check_queue_url(self, url: str) -> None:
        """The key goes only to the api_base origin or to fal's own hosts over HTTPS."""
        target, base = httpx.URL(url), httpx.URL(self.api_base)
        host = (target.host or "").lower()
        same_origin = (target.scheme, host, target.port) == (base.scheme, base.host.lower(), base.port)
        on_fal = target.scheme == "https" and any(host == d or host.endswith("." + d)
                                                  for d in QUEUE_DOMAINS)
        if not (same_origin or on_fal):
            raise UpstreamError(f"fal's answer points to an unexpected host ({host or url[:60]}); "
                                "not following it.")

    async def wait_for_answer(self, queued: QueuedJob) -> FalAnswer:
        """Poll, slowly more patiently, until the job completes; then read its result."""
        interval = self.poll_interval
        while True:
            await anyio.sleep(interval)
            if await self.completed(queued):
                break
            interval = min(interval * 1.5, self.max_poll_interval)
        response = await self.request("GET", queued.response_url, headers=self.headers())
        return parse_result(_json(response))

    async def completed(self, queued: QueuedJob) -> bool:
        """One status check; a transient failure counts as "not yet" (the deadline bounds it)."""
        try:
            response = await self.send("GET", queued.status_url, params={"logs": "0"},
                                       headers=self.headers())
        except httpx.HTTPError as exc:
            log.warning("fal status check for %s failed (%s); polling on", queued.request_id,
                        type(exc).__name__)
            return False
        if response.status_code in _TRANSIENT_STATUS:
            log.warning("fal status check for %s answered HTTP %s; polling on", queued.request_id,
                        response.status_code)
            return False
        if response.status_code >= 400:
            raise self.upstream_error(response)
        return parse_status(_json(response))

    async def cancel(self, queued: QueuedJob) -> None:
        """Ask fal to drop the job; best effort, shielded from the cancellation in progress."""
        with anyio.move_on_after(_CANCEL_TIMEOUT_S, shield=True):
            try:
                response = await self.send("PUT", queued.cancel_url, headers=self.headers())
                log.info("cancelled fal request %s (HTTP %s)", queued.request_id, response.status_code)
            except httpx.HTTPError as exc:
                log.warning("could not cancel fal request %s (%s)", queued.request_id, type(exc).__name__)

    # -- results ------------------------------------------------------------------------

    async def download(self, answer: FalAnswer, n: int) -> list[OutputImage]:
        if answer.flagged:
            raise self.content_blocked(
                f"its safety checker flagged {answer.flagged} of the results. Rephrase the "
                "prompt or use other images.")
        images = []
        for url in answer.image_urls[:n]:
            data = decode_data_url(url) if url.startswith("data:") else await self.fetch_result(url)
            content_type = sniff_content_type(data)
            if content_type is None:
                raise UpstreamError("fal's result is not a PNG, JPEG or WebP image.")
            images.append(OutputImage(data=data, content_type=content_type))
        return images

    def upstream_error(self, response: httpx.Response) -> RetouchError:
        """fal's typed errors: content blocks become 400 content_policy_violation."""
        found = problems(response)
        blocked = [message for kind, message in found if kind == _CONTENT_POLICY]
        if blocked:
            return self.content_blocked("; ".join(blocked)[:300])
        if response.status_code in (400, 422) and found:
            return InvalidRequestError(
                f"fal refused the request: {'; '.join(m for _, m in found)[:300]}.",
                code="upstream_rejected")
        return super().upstream_error(response)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise UpstreamError(f"fal answered HTTP {response.status_code} with something "
                            "other than JSON.") from exc
