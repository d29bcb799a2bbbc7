"""``openai``: OpenAI's Images API — the GPT image models and DALL·E 2.

Protocol (one call per job; nothing to poll, nothing to cancel)::

    POST {api_base}/images/edits           multipart/form-data, Authorization: Bearer <key>
        image[]  repeated, in order (1–16 files; DALL·E 2: one square PNG as ``image``)
        mask     PNG the size of the first image; transparent pixels mark where to edit
        prompt, model, n, size, quality, background, output_format,
        output_compression, input_fidelity, user            (all text parts)
    POST {api_base}/images/generations     JSON {model, prompt, n, size, quality, …}

    200 {created, data: [{b64_json, url, revised_prompt}], output_format, size,
         usage: {input_tokens, output_tokens, total_tokens, …}}
    400 {error: {message, type, param, code}}; a content block is
        type ``image_generation_user_error`` or code ``moderation_blocked``.

GPT image models always answer with ``b64_json`` and *reject* ``response_format``, so it
is sent only to DALL·E 2 (as ``b64_json``). A family of models is described as data
(``Family``): which fields it takes and how its images are named. OpenAI has no seed:
``seed`` is dropped, like the other fields a family does not take, and listed in
``EditResult.extra["dropped_params"]``. ``n`` maps to ``n``; ``size`` to ``WxH``.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import anyio
import httpx
import orjson
from pydantic import BaseModel, ConfigDict

from retouch.engine.codecs import encode
from retouch.errors import (
    InvalidRequestError,
    RetouchError,
    UpstreamError,
    UpstreamTimeoutError,
)
from retouch.inputs import InputImage
from retouch.offload import run_sized
from retouch.providers.base import EditJob, EditResult, OutputImage
from retouch.providers.hosted import HostedEditModel, sniff_content_type
from retouch.providers.transport import Payload, portable

log = logging.getLogger("retouch.providers.openai")

_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
_USAGE_KEYS = ("input_tokens", "output_tokens", "total_tokens")
# Honoured by retouch itself when the upstream cannot: it transcodes the answer.
_ENCODING_FIELDS = frozenset({"output_format", "output_compression"})


@dataclass(frozen=True)
class Family:
    """What one family of models behind an OpenAI-style API accepts."""

    name: str
    image_field: str  # the multipart part that carries input images
    max_input_images: int
    fields: frozenset[str]  # optional request fields it takes
    qualities: frozenset[str] | None = None  # None: any quality value is passed on
    response_format: str | None = None  # sent only to families that accept it
    forwards_options: bool = True
    png_uploads: bool = False  # inputs must be PNG files


_GPT_IMAGE_FIELDS = frozenset({"size", "quality", "background", "output_format",
                               "output_compression", "input_fidelity", "user"})
GPT_IMAGE = Family("gpt-image", "image[]", 16, _GPT_IMAGE_FIELDS,
                   qualities=frozenset({"low", "medium", "high", "auto"}))
# DALL·E 2 answers in PNG; retouch transcodes to the requested output_format itself.
DALL_E_2 = Family("dall-e-2", "image", 1, frozenset({"size", "user"}),
                  qualities=frozenset({"standard"}), response_format="b64_json",
                  forwards_options=False, png_uploads=True)
FAMILIES = {family.name: family for family in (GPT_IMAGE, DALL_E_2)}
# Exact upstream names of models outside the GPT image family; new GPT image models
# need no entry. Config ``family:`` overrides.
MODEL_FAMILIES = {"dall-e-2": "dall-e-2"}


@dataclass
class UpstreamRequest:
    """One HTTP call, ready for ``HostedEditModel.request``, and what it leaves out."""

    method: str
    path: str
    kwargs: dict[str, Any]
    dropped: list[str] = field(default_factory=list)


@dataclass
class UpstreamImage:
    """One result as the upstream gave it: inline bytes or a URL to download."""

    b64_json: str | None = None
    url: str = ""


@dataclass
class ParsedAnswer:
    images: list[UpstreamImage]
    revised_prompt: str = ""
    usage: dict[str, int] | None = None


# -- translation: job → request -------------------------------------------------------


def job_fields(job: EditJob, family: Family, options: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The optional fields ``family`` takes from ``job``, and the names of those dropped."""
    wanted = {
        "size": f"{job.size[0]}x{job.size[1]}" if job.size else None,
        "quality": job.quality,
        "background": job.background,
        "output_format": job.output_format,
        "output_compression": job.output_compression,
        "input_fidelity": job.input_fidelity,
        "user": job.user,
        "seed": job.seed,
    }
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for name, value in wanted.items():
        if value is None:
            continue
        if name in family.fields and (name != "quality" or _quality_taken(family, value)):
            kept[name] = value
        elif name not in _ENCODING_FIELDS:
            dropped.append(name)
    if family.forwards_options:
        kept.update(options)
    else:
        dropped += list(options)
    return kept, dropped


def _quality_taken(family: Family, value: str) -> bool:
    return family.qualities is None or value in family.qualities


def check_job(job: EditJob, family: Family) -> None:
    """Refuse what the family cannot honour and that would change the result."""
    if job.background == "transparent" and "background" not in family.fields:
        raise InvalidRequestError(
            f"background='transparent' is not offered by {family.name} models; leave "
            "background out or choose a GPT image model.", param="background")


def build_edit_request(job: EditJob, model: str, family: Family,
                       options: dict[str, Any]) -> UpstreamRequest:
    """Multipart ``POST /images/edits``: images in order, then the mask, then text fields."""
    check_job(job, family)
    fields, dropped = job_fields(job, family, options)
    data = {"model": model, "prompt": job.prompt, "n": str(job.n),
            **{name: _form_text(value) for name, value in fields.items()}}
    if family.response_format:
        data["response_format"] = family.response_format
    files = [(family.image_field, upload_part(image, f"image_{i}", png_only=family.png_uploads))
             for i, image in enumerate(job.images)]
    if job.mask is not None:
        files.append(("mask", upload_part(job.mask, "mask", png_only=True)))
    return UpstreamRequest("POST", "/images/edits", {"data": data, "files": files}, dropped)


def build_generation_request(job: EditJob, model: str, family: Family,
                             options: dict[str, Any]) -> UpstreamRequest:
    """JSON ``POST /images/generations``."""
    check_job(job, family)
    fields, dropped = job_fields(job, family, options)
    body = {"model": model, "prompt": job.prompt, "n": job.n, **fields}
    if family.response_format:
        body["response_format"] = family.response_format
    return UpstreamRequest("POST", "/images/generations", {"json": body}, dropped)


def _form_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def upload_part(image: InputImage, stem: str, *, png_only: bool = False) -> tuple[str, bytes, str]:
    """``(filename, bytes, content type)``; formats OpenAI does not read go as PNG."""
    if png_only and image.format != "PNG":
        payload = Payload(encode(image.pixels(), "png"), "image/png")
    else:
        payload = portable(image)
    return f"{stem}.{_EXTENSIONS[payload.content_type]}", payload.data, payload.content_type


# -- translation: answer → result -----------------------------------------------------


def parse_images_response(body: Any, provider: str) -> ParsedAnswer:
    """``{data: [{b64_json, url, revised_prompt}], usage}``; empty strings mean absent."""
    items = body.get("data") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise UpstreamError(f"{provider} answered without any images.")
    images = [_parse_item(item, provider) for item in items]
    revised = next((str(i.get("revised_prompt")) for i in items
                    if isinstance(i, dict) and i.get("revised_prompt")), "")
    return ParsedAnswer(images, revised, parse_usage(body.get("usage")))


def _parse_item(item: Any, provider: str) -> UpstreamImage:
    if isinstance(item, dict) and isinstance(item.get("b64_json"), str) and item["b64_json"]:
        # Kept as base64: decoding 2 MB only to encode it again for the client costs ~8 ms.
        # The head is decoded to check it is an image; the rest when (if) bytes are needed.
        if sniff_content_type(_head_of(item["b64_json"])) is None:
            raise UpstreamError(f"{provider} sent a b64_json that is not a PNG, JPEG or WebP image.")
        return UpstreamImage(b64_json=item["b64_json"])
    if isinstance(item, dict) and isinstance(item.get("url"), str) and item["url"]:
        return UpstreamImage(url=item["url"])
    raise UpstreamError(f"{provider} sent a result with neither b64_json nor url.")


def parse_usage(usage: Any) -> dict[str, int] | None:
    """The token counts retouch reports; the upstream's detail breakdowns are left out."""
    if not isinstance(usage, dict):
        return None
    counts = {key: usage[key] for key in _USAGE_KEYS if isinstance(usage.get(key), int)}
    return counts or None


def content_block_message(response: httpx.Response, codes: frozenset[str]) -> str | None:
    """The upstream's message when its error answer is a content block, else None."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return None
    if not isinstance(error, dict):
        return None
    if error.get("code") in codes or error.get("type") in codes:
        return str(error.get("message") or error.get("code") or "no reason given")[:300]
    return None


# -- the backend ----------------------------------------------------------------------


class OpenAIOptions(BaseModel):
    """OpenAI fields beyond the common ones."""

    model_config = ConfigDict(extra="forbid")

    moderation: Literal["low", "auto"] | None = None  # generations only


class OpenAIEditModel(HostedEditModel):
    """GPT image models (gpt-image-1, gpt-image-1-mini, gpt-image-1.5, …) and DALL·E 2.

    Config: ``model`` (upstream name), ``family`` (``gpt-image`` or ``dall-e-2``;
    known from the model name when left out), and the capability flags to override.
    """

    provider: ClassVar[str] = "openai"
    Options = OpenAIOptions
    default_api_base: ClassVar[str] = "https://api.openai.com/v1"
    default_api_key_env: ClassVar[str] = "OPENAI_API_KEY"
    # DALL·E 2 links results here when asked for URLs (retouch asks for b64_json).
    result_hosts: ClassVar[frozenset[str]] = frozenset({"oaidalleapiprodscus.blob.core.windows.net"})
    content_block_codes: ClassVar[frozenset[str]] = frozenset(
        {"moderation_blocked", "image_generation_user_error"})
    supports_mask = True
    supports_generation = True
    max_n = 10
    output_formats = ("png", "jpeg", "webp")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.family = self.choose_family()
        self.max_input_images = self.family.max_input_images
        self.apply_capability_config()

    def choose_family(self) -> Family:
        name = str(self.config.get("family") or MODEL_FAMILIES.get(self.upstream_model, "gpt-image"))
        if name not in FAMILIES:
            raise ValueError(f"{self.id}: family {name!r} is unknown; choose one of {', '.join(FAMILIES)}")
        return FAMILIES[name]

    def apply_capability_config(self) -> None:
        """models.yaml may narrow or widen what the upstream model is known to take."""
        for flag in ("max_input_images", "min_input_images", "max_n"):
            if flag in self.config:
                setattr(self, flag, int(self.config[flag]))
        for flag in ("supports_mask", "supports_generation", "supports_edits"):
            if flag in self.config:
                setattr(self, flag, bool(self.config[flag]))
        if "output_formats" in self.config:
            self.output_formats = tuple(self.config["output_formats"])

    # -- translation hooks (openai_compatible overrides these) --------------------------

    def build(self, job: EditJob) -> UpstreamRequest:
        options = options_of(job)
        if job.images:
            # moderation is a generations field; the multipart edit form has none.
            dropped = ["moderation"] if options.pop("moderation", None) else []
            request = build_edit_request(job, self.upstream_model, self.family, options)
            request.dropped += dropped
            return request
        return build_generation_request(job, self.upstream_model, self.family, options)

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key()}"}

    # -- the call -----------------------------------------------------------------------

    async def prepare(self, job: EditJob) -> UpstreamRequest:
        """The upstream request; a subclass that lends image links builds it here."""
        return self.build(job)

    async def edit(self, job: EditJob) -> EditResult:
        request = await self.prepare(job)
        if request.dropped:
            log.info("model %s: %s dropped; %s does not take them", self.id,
                     ", ".join(request.dropped), self.upstream_model)
        with self.deadline():
            response = await self.request(request.method, request.path,
                                          headers=self.auth_headers(), **request.kwargs)
            # Parsing megabytes of JSON and base64 would stall every other request: a thread.
            answer = await run_sized(len(response.content), parse_answer, response, self.provider)
            outputs = [await self.output_of(image) for image in answer.images]
        extra = {"dropped_params": request.dropped} if request.dropped else {}
        return EditResult(images=outputs, revised_prompt=answer.revised_prompt,
                          usage=answer.usage, extra=extra)

    async def output_of(self, image: UpstreamImage) -> OutputImage:
        if image.b64_json is not None:
            return OutputImage(b64_json=image.b64_json,
                               content_type=sniff_content_type(_head_of(image.b64_json)))
        data = await self.fetch_result(image.url)
        return OutputImage(data=data, content_type=sniff_content_type(data))

    @contextmanager
    def deadline(self) -> Iterator[None]:
        """One deadline for the whole job, however the upstream trickles its answer."""
        try:
            with anyio.fail_after(self.timeout):
                yield
        except TimeoutError as exc:
            raise UpstreamTimeoutError(
                f"{self.provider} did not finish within {self.timeout:g} s.") from exc

    def upstream_error(self, response: httpx.Response) -> RetouchError:
        if response.status_code in (400, 422):
            message = content_block_message(response, self.content_block_codes)
            if message is not None:
                return self.content_blocked(message)
        return super().upstream_error(response)


def options_of(job: EditJob) -> dict[str, Any]:
    if isinstance(job.options, BaseModel):
        return job.options.model_dump(exclude_none=True)
    return dict(job.options or {})


def _head_of(b64: str) -> bytes:
    """The first bytes of a base64 payload (enough to sniff the image type)."""
    try:
        return base64.b64decode(b64[:24])
    except (binascii.Error, ValueError):
        return b""


def parse_answer(response: httpx.Response, provider: str) -> ParsedAnswer:
    return parse_images_response(_json_of(response, provider), provider)


def _json_of(response: httpx.Response, provider: str) -> Any:
    try:
        return orjson.loads(response.content)
    except ValueError as exc:
        raise UpstreamError(f"{provider} answered with something other than JSON.") from exc
