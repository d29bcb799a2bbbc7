"""``stability``: Stability AI's Stable Image edit services (v2beta), one operation per model.

The protocol::

    POST {api_base}/stable-image/edit/{operation}        multipart/form-data
    Authorization: Bearer <STABILITY_API_KEY>
    Accept: application/json
    image=<file>  mask=<file>  prompt=…  search_prompt=…  negative_prompt=…  seed=…
    output_format=png|jpeg|webp  grow_mask=…  (which fields depends on the operation)

    200 {"image": <base64>, "finish_reason": "SUCCESS" | "CONTENT_FILTERED", "seed": 42}
    4xx/5xx {"id": …, "name": "bad_request" | "content_moderation" | …, "errors": ["…"]}

``operation`` (from models.yaml) is one of inpaint, erase, search-and-replace,
search-and-recolor, remove-background, outpaint; each declared model serves one. The
answer is synchronous: no job id, nothing to poll or cancel. Each call makes one image,
so ``n`` images are ``n`` calls made one after the other (seed ``s``, ``s + 1``, …).

Stability's masks are white where to edit; OpenAI's are transparent where to edit.
The mask is translated (``255 - alpha``; a mask without alpha is taken as already
white-means-edit). The operation sets the output size: only outpaint changes it, and
there ``size`` becomes the padding on each side. A prompt the operation does not read
(erase, remove-background) is dropped and listed in ``extra["dropped_params"]``.
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass
from typing import Any, Literal

import anyio
import httpx
from pydantic import BaseModel, ConfigDict, Field

from retouch.engine.codecs import encode
from retouch.errors import InvalidRequestError, RetouchError, UpstreamError
from retouch.inputs import InputImage
from retouch.providers.base import EditJob, EditResult, OutputImage
from retouch.providers.hosted import HostedEditModel, sniff_content_type
from retouch.providers.registry import ConfigError

log = logging.getLogger("retouch.providers.stability")

MAX_SEED = 4_294_967_294
UPLOAD_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
StylePreset = Literal[
    "3d-model", "analog-film", "anime", "cinematic", "comic-book", "digital-art", "enhance",
    "fantasy-art", "isometric", "line-art", "low-poly", "modeling-compound", "neon-punk",
    "origami", "photographic", "pixel-art", "tile-texture",
]


class StabilityOptions(BaseModel):
    """Stability's own request fields; each operation reads some of them (``OPERATIONS``)."""

    model_config = ConfigDict(extra="forbid")

    search_prompt: str | None = Field(default=None, min_length=1, max_length=10_000)
    select_prompt: str | None = Field(default=None, min_length=1, max_length=10_000)
    negative_prompt: str | None = Field(default=None, max_length=10_000)
    grow_mask: int | None = Field(default=None, ge=0, le=100)
    style_preset: StylePreset | None = None
    left: int | None = Field(default=None, ge=0, le=2000)
    right: int | None = Field(default=None, ge=0, le=2000)
    up: int | None = Field(default=None, ge=0, le=2000)
    down: int | None = Field(default=None, ge=0, le=2000)
    creativity: float | None = Field(default=None, ge=0, le=1)


@dataclass(frozen=True)
class Operation:
    """What one edit endpoint reads."""

    name: str
    takes_prompt: bool
    mask: Literal["none", "optional", "required"]
    options: frozenset[str]
    required_options: frozenset[str] = frozenset()
    takes_seed: bool = True
    output_formats: tuple[str, ...] = ("png", "jpeg", "webp")


_PADDING = frozenset({"left", "right", "up", "down"})
OPERATIONS = {op.name: op for op in (
    # Without a mask, inpaint reads the image's own alpha channel as the mask.
    Operation("inpaint", True, "optional",
              frozenset({"negative_prompt", "grow_mask", "style_preset"})),
    Operation("erase", False, "required", frozenset({"grow_mask"})),
    Operation("search-and-replace", True, "none",
              frozenset({"search_prompt", "negative_prompt", "grow_mask", "style_preset"}),
              required_options=frozenset({"search_prompt"})),
    Operation("search-and-recolor", True, "none",
              frozenset({"select_prompt", "negative_prompt", "grow_mask", "style_preset"}),
              required_options=frozenset({"select_prompt"})),
    # No seed: the same image in gives the same cut-out.
    Operation("remove-background", False, "none", frozenset(), takes_seed=False,
              output_formats=("png", "webp")),
    Operation("outpaint", True, "none", _PADDING | {"creativity", "style_preset"}),
)}


# -- translation: job → request ----------------------------------------------------------

def build_request(job: EditJob, operation: Operation) -> tuple[str, str, dict[str, Any]]:
    """The ``(method, path, httpx kwargs)`` of one call; decodes the mask (and inputs
    Stability cannot read as they are), so run it off the event loop."""
    options = job.options or StabilityOptions()
    check_job(job, operation, options)
    fields: dict[str, str] = {"output_format": job.output_format}
    if operation.takes_prompt:
        fields["prompt"] = job.prompt
    if operation.takes_seed and job.seed is not None:
        fields["seed"] = str(job.seed)
    chosen = options.model_dump(exclude_none=True, include=set(operation.options))
    fields.update({name: str(value) for name, value in chosen.items()})
    if operation.name == "outpaint":
        fields.update(outpaint_padding(job, options))
    files = {"image": upload(job.images[0], "image")}
    if job.mask is not None:
        files["mask"] = ("mask.png", stability_mask(job.mask), "image/png")
    return "POST", f"/stable-image/edit/{operation.name}", {"data": fields, "files": files}


def check_job(job: EditJob, operation: Operation, options: StabilityOptions) -> None:
    """Each failure is a 400 that names the parameter and says what the operation takes."""
    check_options(operation, options)
    if operation.mask == "required" and job.mask is None:
        raise InvalidRequestError(
            f"stability '{operation.name}' needs a mask: send 'mask', a PNG the size of the "
            "image that is transparent where to edit.", param="mask", code="missing_mask")
    if job.seed is not None and (job.seed < 0 or job.seed + job.n - 1 > MAX_SEED):
        raise InvalidRequestError(
            f"seed={job.seed} is outside Stability's range 0-{MAX_SEED} (with n={job.n}, "
            "each image uses the next seed).", param="seed")
    check_background(job, operation)
    check_size(job, operation)


def check_options(operation: Operation, options: StabilityOptions) -> None:
    given = set(options.model_dump(exclude_none=True))
    unread, missing = sorted(given - operation.options), sorted(operation.required_options - given)
    if unread:
        takes = ", ".join(sorted(operation.options)) or "none"
        raise InvalidRequestError(
            f"{unread[0]} is not read by stability '{operation.name}'; its parameters: {takes}.",
            param=unread[0], code="unknown_parameter")
    if missing:
        raise InvalidRequestError(
            f"stability '{operation.name}' needs {missing[0]}: say which part of the image to "
            f"change (e.g. {missing[0]}='the cat').", param=missing[0],
            code="missing_required_parameter")


def check_size(job: EditJob, operation: Operation) -> None:
    first = job.images[0]
    if operation.name == "outpaint" or not job.size or job.size == (first.width, first.height):
        return  # outpaint reads size as padding; the image's own size changes nothing
    raise InvalidRequestError(
        f"size={job.size[0]}x{job.size[1]} cannot be honoured: stability '{operation.name}' "
        f"keeps the image's size ({first.width}x{first.height}). Leave size out, or resize "
        "the image first.", param="size")


def check_background(job: EditJob, operation: Operation) -> None:
    removes = operation.name == "remove-background"
    if job.background == "transparent" and not removes:
        raise InvalidRequestError(
            f"background='transparent' cannot be honoured by stability '{operation.name}'; "
            "only remove-background makes transparency.", param="background")
    if job.background == "opaque" and removes:
        raise InvalidRequestError(
            "background='opaque' contradicts remove-background, whose result is transparent.",
            param="background")


def outpaint_padding(job: EditJob, options: StabilityOptions) -> dict[str, str]:
    """Pixels to add on each side: given directly, or split evenly from ``size``."""
    explicit = options.model_dump(exclude_none=True, include=set(_PADDING))
    if job.size and explicit:
        raise InvalidRequestError(
            "send either size or left/right/up/down to outpaint, not both.", param="size")
    if explicit:
        return {}  # already among the operation's fields
    first = job.images[0]
    if not job.size or job.size[0] < first.width or job.size[1] < first.height \
            or job.size == (first.width, first.height):
        raise InvalidRequestError(
            f"outpaint needs a size larger than the image ({first.width}x{first.height}), "
            "or left/right/up/down in pixels.", param="size")
    extra_w, extra_h = job.size[0] - first.width, job.size[1] - first.height
    return {"left": str(extra_w // 2), "right": str(extra_w - extra_w // 2),
            "up": str(extra_h // 2), "down": str(extra_h - extra_h // 2)}


def upload(image: InputImage, name: str) -> tuple[str, bytes, str]:
    content_type = UPLOAD_TYPES.get(image.format)
    if content_type is None:  # GIF, BMP, TIFF: Stability reads PNG, JPEG and WebP only
        return f"{name}.png", encode(image.pixels(), "png"), "image/png"
    return f"{name}.{image.format.lower()}", image.read_bytes(), content_type


def stability_mask(mask: InputImage) -> bytes:
    """OpenAI's mask (transparent = edit) as Stability's (white = edit), grey kept grey."""
    pixels = mask.pixels()
    if pixels.shape[2] == 4:
        grey = 255 - pixels[..., 3]
    else:
        grey = pixels.mean(axis=2).round().astype("uint8")
    return encode(grey, "png")


def with_seed(kwargs: dict[str, Any], index: int) -> dict[str, Any]:
    """The same request for call ``index`` of ``n``: its own seed, when there is one."""
    if index == 0 or "seed" not in kwargs["data"]:
        return kwargs
    return {**kwargs, "data": {**kwargs["data"], "seed": str(int(kwargs["data"]["seed"]) + index)}}


def dropped_params(job: EditJob, operation: Operation) -> list[str]:
    dropped = [] if operation.takes_prompt else ["prompt"]
    if job.seed is not None and not operation.takes_seed:
        dropped.append("seed")
    if job.quality not in (None, "auto"):
        dropped.append("quality")
    return dropped


# -- translation: response → result ------------------------------------------------------

@dataclass
class StabilityAnswer:
    image: bytes | None
    finish_reason: str
    seed: int | None


def parse_response(body: dict[str, Any]) -> StabilityAnswer:
    try:
        image = base64.b64decode(body["image"], validate=True) if body.get("image") else None
    except (binascii.Error, ValueError, TypeError) as exc:
        raise UpstreamError("stability returned an image that is not valid base64.") from exc
    seed = body.get("seed")
    return StabilityAnswer(image=image, finish_reason=str(body.get("finish_reason") or ""),
                           seed=seed if isinstance(seed, int) else None)


def parse_error(response: httpx.Response) -> tuple[str, str]:
    """Stability's error ``(name, message)``: the ``errors`` list joined, trimmed."""
    try:
        body = response.json()
    except ValueError:
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    errors = body.get("errors")
    if isinstance(errors, list):
        message = "; ".join(str(e) for e in errors)
    else:
        message = str(body.get("message") or "")
    return str(body.get("name") or ""), message[:300]


# -- the backend -------------------------------------------------------------------------

class StabilityEditModel(HostedEditModel):
    """One Stability edit operation on one image; flags follow the configured operation."""

    provider = "stability"
    default_api_base = "https://api.stability.ai/v2beta"
    default_api_key_env = "STABILITY_API_KEY"
    Options = StabilityOptions
    max_input_images = 1
    supports_generation = False
    max_n = 4  # n calls one after the other: each takes seconds
    ignored_params = frozenset({"input_fidelity", "user"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        name = str(self.config.get("operation") or "inpaint")
        if name not in OPERATIONS:
            raise ConfigError(
                f"model {self.id}: operation {name!r} is not a Stability edit operation; "
                f"choose one of {', '.join(OPERATIONS)}")
        self.operation = OPERATIONS[name]
        self.supports_mask = self.operation.mask != "none"
        self.deterministic = not self.operation.takes_seed
        self.output_formats = tuple(self.config.get("output_formats", self.operation.output_formats))
        self.max_n = int(self.config.get("max_n", self.max_n))

    async def edit(self, job: EditJob) -> EditResult:
        method, path, kwargs = await anyio.to_thread.run_sync(build_request, job, self.operation)
        dropped = dropped_params(job, self.operation)
        if dropped:
            log.info("model %s: stability '%s' does not read %s; dropped", self.id,
                     self.operation.name, ", ".join(dropped))
        # No count field: one call per image, one at a time. A deterministic operation
        # would bill n times for n equal images, so one call serves them all.
        calls = 1 if self.deterministic else job.n
        answers = []
        for index in range(calls):
            answers.append(await self.call_once(method, path, with_seed(kwargs, index)))
        images = [OutputImage(data=a.image, content_type=sniff_content_type(a.image or b""))
                  for a in answers]
        return EditResult(images=images * (job.n // calls),
                          extra={"dropped_params": dropped, "seeds": [a.seed for a in answers]})

    async def call_once(self, method: str, path: str, kwargs: dict[str, Any]) -> StabilityAnswer:
        headers = {"authorization": f"Bearer {self.api_key()}", "accept": "application/json"}
        response = await self.request(method, path, headers=headers, **kwargs)
        try:
            body = response.json()
        except ValueError as exc:
            raise UpstreamError("stability answered with something other than JSON.") from exc
        return self.checked(parse_response(body if isinstance(body, dict) else {}))

    def checked(self, answer: StabilityAnswer) -> StabilityAnswer:
        if answer.finish_reason == "CONTENT_FILTERED":
            raise self.content_blocked("the result was filtered (CONTENT_FILTERED).")
        if answer.image is None or sniff_content_type(answer.image) is None:
            raise UpstreamError(
                f"stability answered without a usable image (finish_reason "
                f"{answer.finish_reason or 'missing'}).")
        return answer

    def upstream_error(self, response: httpx.Response) -> RetouchError:
        name, message = parse_error(response)
        if name == "content_moderation":  # sent as 403, which would read as a bad key
            return self.content_blocked(message or "the request was flagged by moderation.")
        if message:
            # The base class reads "error"/"message"; hand it Stability's "errors" that way.
            kept = {k: v for k, v in response.headers.items() if k.lower() == "retry-after"}
            response = httpx.Response(response.status_code, headers=kept,
                                      json={"message": message}, request=response.request)
        return super().upstream_error(response)

