"""Black Forest Labs (api.bfl.ai): FLUX.1 Kontext jobs, submitted once and polled.

Protocol (https://docs.bfl.ai)::

    POST {api_base}/{model}                  x-key: <BFL_API_KEY>     # e.g. /flux-kontext-pro
         {"prompt", "input_image": <base64 (no data: prefix) or a URL>, "input_image_2".."_4",
          "aspect_ratio": "16:9", "seed", "output_format": "png"|"jpeg",
          "safety_tolerance", "prompt_upsampling"}
    200  {"id", "polling_url"}
    GET  {polling_url}                       x-key: <BFL_API_KEY>
    200  {"id", "status", "result": {"sample": <signed URL, valid minutes>}, "details"}

``status`` is ``Pending`` until ``Ready``; ``Request Moderated`` and ``Content Moderated``
are content blocks; ``Error``, ``Failed`` and ``Task not found`` are failures. The key
goes only to the configured API base or to BFL's own hosts (``*.bfl.ai``): a polling URL
anywhere else is a 502, never followed. BFL has no cancel endpoint and no image count:
``n`` images are made by ``n`` jobs one after another (seeds ``seed``, ``seed+1``, …).
The deadline (``timeout``) applies to each job.

models.yaml::

    - id: flux-kontext-max
      provider: bfl
      model: flux-kontext-max
      max_input_images: 4     # Kontext's input_image_2..4 references; default 1
      poll_interval: 0.5      # first pause between polls; it grows to four times that
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

import anyio
import httpx
from pydantic import BaseModel, ConfigDict, Field

from retouch.errors import InvalidRequestError, UpstreamError, UpstreamTimeoutError
from retouch.providers.base import EditJob, EditResult, OutputImage
from retouch.providers.hosted import (
    HostedEditModel,
    closest_ratio,
    refuse_two_shapes,
    sniff_content_type,
    unused_quality,
)
from retouch.providers.transport import Payload, bare_base64, portable

log = logging.getLogger("retouch.providers.bfl")

BFL_DOMAIN = "bfl.ai"  # api.bfl.ai, api.eu.bfl.ai, api.us.bfl.ai, delivery-*.bfl.ai
MAX_REFERENCE_IMAGES = 4  # input_image, input_image_2 .. input_image_4
ASPECT_RATIOS = ("21:9", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16", "9:21")
# BFL encodes jpeg or png; webp is made by retouch from lossless PNG.
UPSTREAM_FORMATS = {"png": "png", "jpeg": "jpeg", "webp": "png"}
_PENDING = re.compile(r"pending|queued|processing|running", re.IGNORECASE)
_MODERATED = frozenset({"Request Moderated", "Content Moderated"})


class BflOptions(BaseModel):
    """BFL fields forwarded as they are."""

    model_config = ConfigDict(extra="forbid")

    aspect_ratio: str | None = None  # instead of size, e.g. "21:9"
    safety_tolerance: int | None = Field(default=None, ge=0, le=6)
    prompt_upsampling: bool | None = None


@dataclass(frozen=True)
class Submission:
    id: str
    polling_url: str


@dataclass(frozen=True)
class Poll:
    status: str
    sample: str = ""
    details: str = ""


# -- translation: no network below this line until the class -----------------------------


def check_job(job: EditJob, model_id: str) -> None:
    """Reject what BFL would silently get wrong; each error names its parameter."""
    if job.background == "transparent":
        raise InvalidRequestError(
            f"{model_id} cannot make transparent backgrounds; send background=opaque or auto.",
            param="background")
    refuse_two_shapes(job.size, getattr(job.options, "aspect_ratio", None))
    if len(job.images) > MAX_REFERENCE_IMAGES:
        raise InvalidRequestError(
            f"{model_id} takes at most {MAX_REFERENCE_IMAGES} images; {len(job.images)} were sent.",
            param="image", code="too_many_images")




def nearest_aspect_ratio(width: int, height: int, choices: tuple[str, ...] = ASPECT_RATIOS) -> str:
    """The listed ratio closest to width:height."""
    return closest_ratio(width, height, choices)

def image_fields(references: list[str]) -> dict[str, str]:
    """``input_image``, ``input_image_2``, … (bare base64 or URLs), in the order given."""
    names = ["input_image"] + [f"input_image_{i}" for i in range(2, MAX_REFERENCE_IMAGES + 1)]
    return dict(zip(names, references))


def build_request(job: EditJob, *, model: str,
                  references: list[str] | None = None) -> tuple[str, str, dict[str, Any]]:
    """``(method, path, httpx kwargs)`` submitting one job; the key is added by the caller.
    ``references`` are the images as sent (URLs); without them, bare base64 of each."""
    if references is None:
        references = [bare_base64(portable(image)) for image in job.images]
    body: dict[str, Any] = {"prompt": job.prompt, **image_fields(references)}
    if job.size:
        body["aspect_ratio"] = nearest_aspect_ratio(*job.size)
    if job.seed is not None:
        body["seed"] = job.seed
    body["output_format"] = UPSTREAM_FORMATS[job.output_format]
    if job.options is not None:
        body.update(job.options.model_dump(exclude_none=True))
    return "POST", f"/{model}", {"json": body, "headers": {"accept": "application/json"}}


def parse_submission(body: Any) -> Submission:
    if not isinstance(body, dict) or not isinstance(body.get("id"), str) or not body["id"]:
        raise UpstreamError("bfl accepted the job without an id.")
    return Submission(id=body["id"], polling_url=str(body.get("polling_url") or ""))


def parse_poll(body: Any) -> Poll:
    if not isinstance(body, dict) or not isinstance(body.get("status"), str):
        raise UpstreamError("bfl answered a poll with something that is not a job status.")
    result = body.get("result") if isinstance(body.get("result"), dict) else {}
    details = body.get("details")
    return Poll(status=body["status"], sample=str(result.get("sample") or ""),
                details=_describe(details) if details else "")


def is_bfl_host(host: str) -> bool:
    host = host.lower().rstrip(".")
    return host == BFL_DOMAIN or host.endswith("." + BFL_DOMAIN)


def allowed_polling_url(url: str, api_base: str) -> bool:
    """Whether the key may go to ``url``: the configured API base, or https on ``*.bfl.ai``."""
    try:
        target, base = httpx.URL(url), httpx.URL(api_base)
    except httpx.InvalidURL:
        return False
    if (target.scheme, target.netloc) == (base.scheme, base.netloc):
        return True
    return target.scheme == "https" and is_bfl_host(target.host or "")


def read_json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise UpstreamError(f"bfl answered HTTP {response.status_code} with a body that is not JSON.") from None


def _host_of(url: str) -> str:
    try:
        return httpx.URL(url).host or "a URL without a host"
    except httpx.InvalidURL:
        return "an unreadable URL"


def _describe(details: Any) -> str:
    """BFL's ``details`` (e.g. ``{"Moderation Reasons": ["Derivative Works"]}``) as text."""
    if isinstance(details, dict):
        parts = []
        for key, value in details.items():
            text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
            parts.append(f"{key}: {text}")
        return "; ".join(parts)[:300]
    return str(details)[:300]


class BflEditModel(HostedEditModel):
    """A FLUX model on Black Forest Labs' own API (Kontext pro/max by default)."""

    provider = "bfl"
    default_api_base = "https://api.bfl.ai/v1"
    default_api_key_env = "BFL_API_KEY"
    result_hosts = frozenset({BFL_DOMAIN})  # and every *.bfl.ai delivery host
    Options = BflOptions
    max_input_images = 1
    supports_generation = True  # Kontext makes images from a prompt alone too
    supports_mask = False
    max_n = 4
    ignored_params = frozenset({"input_fidelity", "user"})
    accepts_image_links = True  # input_image takes base64 or a URL

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        configured = int(self.config.get("max_input_images", self.max_input_images))
        self.max_input_images = max(1, min(configured, MAX_REFERENCE_IMAGES))
        self.max_n = int(self.config.get("max_n", self.max_n))
        self.supports_generation = bool(self.config.get("supports_generation", self.supports_generation))
        self.poll_interval = float(self.config.get("poll_interval", 0.5))

    async def edit(self, job: EditJob) -> EditResult:
        """Make ``job.n`` images with ``job.n`` jobs, one after another."""
        check_job(job, self.id)
        dropped = unused_quality(job)
        if dropped:
            log.info("model %s: BFL has no input for %s; dropped", self.id, ", ".join(dropped))
        payloads = await anyio.to_thread.run_sync(lambda: [portable(i) for i in job.images])
        references = await self.image_references(job, payloads)
        images = []
        for i in range(job.n):
            seed = None if job.seed is None else job.seed + i
            images.append(await self._run_job(replace(job, n=1, seed=seed), references))
        return EditResult(images=images, extra={"dropped_params": dropped})

    async def inline_reference(self, payload: Payload) -> str:
        return bare_base64(payload)  # BFL takes base64 without the data: prefix

    # -- one job ------------------------------------------------------------------------

    async def _run_job(self, job: EditJob, references: list[str]) -> OutputImage:
        """Submit once and poll to the end (BFL cannot cancel a job, so we only stop)."""
        try:
            with anyio.fail_after(self.timeout):
                sample = await self._poll(await self._submit(job, references))
        except TimeoutError:
            raise UpstreamTimeoutError(
                f"bfl did not finish within {self.timeout:g} s (timeout in models.yaml).") from None
        return await self._download(sample)

    async def _submit(self, job: EditJob, references: list[str]) -> Submission:
        method, path, kwargs = build_request(job, model=self.upstream_model, references=references)
        kwargs["headers"]["x-key"] = self.api_key()
        return parse_submission(read_json(await self.request(method, path, **kwargs)))

    async def _poll(self, submission: Submission) -> str:
        """Poll until ``Ready``; return the result's URL."""
        url = self._polling_url(submission)
        interval = self.poll_interval
        while True:
            await anyio.sleep(interval)
            interval = min(interval * 1.5, self.poll_interval * 4)
            response = await self.request("GET", url, headers={"x-key": self.api_key(),
                                                               "accept": "application/json"})
            poll = parse_poll(read_json(response))
            if not _PENDING.fullmatch(poll.status):
                return self._finished(submission, poll)

    def _finished(self, submission: Submission, poll: Poll) -> str:
        if poll.status == "Ready" and poll.sample:
            return poll.sample
        if poll.status == "Ready":
            raise UpstreamError(f"bfl job {submission.id} is ready but names no result image.")
        if poll.status in _MODERATED:
            raise self.content_blocked(f"{poll.status}{' (' + poll.details + ')' if poll.details else ''}.")
        raise UpstreamError(f"bfl job {submission.id} ended with status {poll.status!r}"
                            f"{': ' + poll.details if poll.details else ''}.")

    def _polling_url(self, submission: Submission) -> str:
        if not submission.polling_url:
            return f"/get_result?id={quote(submission.id, safe='')}"
        if allowed_polling_url(submission.polling_url, self.api_base):
            return submission.polling_url
        raise UpstreamError(
            f"bfl asked us to poll {_host_of(submission.polling_url)}, which is not a BFL host; "
            "the job was not followed (the API key is only sent to *.bfl.ai).")

    async def _download(self, url: str) -> OutputImage:
        data = await self.fetch_result(url)
        content_type = sniff_content_type(data)
        if content_type is None:
            raise UpstreamError("bfl returned a result that is not a PNG, JPEG or WebP image.")
        return OutputImage(data=data, content_type=content_type)
