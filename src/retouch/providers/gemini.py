"""``gemini``: Google's Gemini image models ("nano-banana") through ``generateContent``.

The protocol (Gemini API, v1beta)::

    POST {api_base}/models/{model}:generateContent
    x-goog-api-key: <GEMINI_API_KEY>
    {"contents": [{"role": "user",
                   "parts": [{"text": prompt},
                             {"inline_data": {"mime_type": "image/png", "data": <base64>}}, …]}],
     "generationConfig": {"responseModalities": ["TEXT", "IMAGE"],
                          "imageConfig": {"aspectRatio": "3:2"},     # when a size is asked for
                          "seed": 42}}

    200 {"candidates": [{"content": {"parts": [{"text": "…"},
                                               {"inlineData": {"mimeType": "image/png", "data": …}}]},
                         "finishReason": "STOP"}],
         "promptFeedback": {"blockReason": "SAFETY"},   # only when the prompt was refused
         "usageMetadata": {"promptTokenCount", "candidatesTokenCount", "totalTokenCount"}}

The answer is synchronous: no job id, nothing to poll or cancel. Images travel inline as
base64 both ways (the API accepts either spelling, ``inline_data`` or ``inlineData``).
There is no count field, so ``n`` images are ``n`` calls made concurrently; with a seed,
call ``i`` gets ``seed + i`` so the images differ yet can be reproduced. The model
writes a sentence beside its image; it becomes ``revised_prompt``. Gemini has no masks
and draws opaque PNGs; ``size`` becomes the nearest aspect ratio it offers (the model
picks the pixel count). A refused key comes back as HTTP 400 with reason
``API_KEY_INVALID`` and is reported like any other rejected key.
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import anyio
import httpx
from pydantic import BaseModel, ConfigDict, Field

from retouch.engine.codecs import encode
from retouch.errors import InvalidRequestError, RetouchError, UpstreamError
from retouch.inputs import InputImage
from retouch.providers.base import EditJob, EditResult, OutputImage
from retouch.providers.hosted import (
    HostedEditModel,
    closest_ratio,
    refuse_two_shapes,
    sniff_content_type,
    unused_quality,
)

log = logging.getLogger("retouch.providers.gemini")

AspectRatio = Literal["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"]
ASPECT_RATIOS: tuple[str, ...] = get_args(AspectRatio)
# Finish and block reasons that mean "refused on content grounds", not "failed".
BLOCK_REASONS = frozenset({
    "SAFETY", "IMAGE_SAFETY", "PROHIBITED_CONTENT", "IMAGE_PROHIBITED_CONTENT", "BLOCKLIST",
    "SPII", "RECITATION", "IMAGE_RECITATION",
})
# Formats Gemini reads as they are; anything else is re-encoded as PNG first.
INLINE_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


class GeminiOptions(BaseModel):
    """Gemini's own request fields."""

    model_config = ConfigDict(extra="forbid")

    aspect_ratio: AspectRatio | None = None
    image_size: Literal["1K", "2K", "4K"] | None = None  # Gemini 3 Pro Image and later
    temperature: float | None = Field(default=None, ge=0, le=2)


# -- translation: job → request ----------------------------------------------------------

def build_request(job: EditJob, model: str) -> tuple[str, str, dict[str, Any]]:
    """The ``(method, path, httpx kwargs)`` of one call; decodes pixels only for
    inputs Gemini cannot read as they are, so run it off the event loop."""
    options = job.options or GeminiOptions()
    parts: list[dict[str, Any]] = [{"text": job.prompt}]
    parts += [image_part(image) for image in job.images]
    config: dict[str, Any] = {"responseModalities": ["TEXT", "IMAGE"]}
    image_config = build_image_config(job.size, options)
    if image_config:
        config["imageConfig"] = image_config
    if job.seed is not None:
        config["seed"] = job.seed
    if options.temperature is not None:
        config["temperature"] = options.temperature
    body = {"contents": [{"role": "user", "parts": parts}], "generationConfig": config}
    return "POST", f"/models/{model}:generateContent", {"json": body}


def image_part(image: InputImage) -> dict[str, Any]:
    mime_type = INLINE_TYPES.get(image.format)
    data = image.read_bytes() if mime_type else encode(image.pixels(), "png")
    return {"inline_data": {"mime_type": mime_type or "image/png",
                            "data": base64.b64encode(data).decode("ascii")}}


def build_image_config(size: tuple[int, int] | None, options: GeminiOptions) -> dict[str, str]:
    refuse_two_shapes(size, options.aspect_ratio)
    config = {}
    ratio = options.aspect_ratio or (nearest_aspect_ratio(*size) if size else None)
    if ratio:
        config["aspectRatio"] = ratio
    if options.image_size:
        config["imageSize"] = options.image_size
    return config


def nearest_aspect_ratio(width: int, height: int) -> str:
    """The ratio Gemini offers that is closest to ``width:height``."""
    return closest_ratio(width, height, ASPECT_RATIOS)

def with_seed(kwargs: dict[str, Any], index: int) -> dict[str, Any]:
    """The same request for call ``index`` of ``n``: its own seed, when there is one."""
    config = kwargs["json"]["generationConfig"]
    if index == 0 or "seed" not in config:
        return kwargs
    body = {**kwargs["json"], "generationConfig": {**config, "seed": config["seed"] + index}}
    return {**kwargs, "json": body}


def check_job(job: EditJob) -> None:
    """What Gemini cannot do and the core does not already check."""
    if job.background == "transparent":
        raise InvalidRequestError(
            "background='transparent' cannot be honoured: Gemini draws opaque images. "
            "Send background=auto or opaque, or use a model with transparency.",
            param="background")




# -- translation: response → result ------------------------------------------------------

@dataclass
class GeminiAnswer:
    """What one ``generateContent`` answer says, before deciding whether it failed."""

    image: bytes | None = None
    text: str = ""
    finish_reason: str = ""
    finish_message: str = ""  # Google's own words on why, when it gives them
    block_reason: str = ""
    usage: dict[str, int] = field(default_factory=dict)


def parse_response(body: dict[str, Any]) -> GeminiAnswer:
    candidates = body.get("candidates") or []
    candidate = candidates[0] if candidates else {}
    answer = GeminiAnswer(
        finish_reason=str(candidate.get("finishReason") or ""),
        finish_message=str(candidate.get("finishMessage") or "").strip()[:300],
        block_reason=str((body.get("promptFeedback") or {}).get("blockReason") or ""),
        usage=parse_usage(body.get("usageMetadata") or {}),
    )
    texts = []
    for part in (candidate.get("content") or {}).get("parts") or []:
        if part.get("thought"):
            continue  # thinking models show drafts on the way; only the final image counts
        inline = part.get("inlineData") or part.get("inline_data")
        if inline and answer.image is None:
            answer.image = decode_inline(inline)
        elif part.get("text"):
            texts.append(part["text"].strip())
    answer.text = " ".join(t for t in texts if t)
    return answer


def decode_inline(inline: dict[str, Any]) -> bytes:
    try:
        return base64.b64decode(inline.get("data") or "", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UpstreamError("gemini returned an image that is not valid base64.") from exc


def parse_usage(metadata: dict[str, Any]) -> dict[str, int]:
    if not metadata:
        return {}
    return {
        "input_tokens": int(metadata.get("promptTokenCount") or 0),
        "output_tokens": int(metadata.get("candidatesTokenCount") or 0),
        "total_tokens": int(metadata.get("totalTokenCount") or 0),
    }


# -- the backend -------------------------------------------------------------------------

class GeminiEditModel(HostedEditModel):
    """Gemini image models: several reference images, generation, no masks."""

    provider = "gemini"
    default_api_base = "https://generativelanguage.googleapis.com/v1beta"
    default_api_key_env = "GEMINI_API_KEY"
    Options = GeminiOptions
    # gemini-2.5-flash-image works best with up to 3 inputs; Gemini 3 Pro Image takes 14
    # (set max_input_images in models.yaml).
    max_input_images = 3
    supports_mask = False
    supports_generation = True
    output_formats = ("png",)
    max_n = 4  # n concurrent calls: more mostly earns a 429
    ignored_params = frozenset({"input_fidelity", "user"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_input_images = int(self.config.get("max_input_images", self.max_input_images))
        self.max_n = int(self.config.get("max_n", self.max_n))
        self.output_formats = tuple(self.config.get("output_formats", self.output_formats))

    async def edit(self, job: EditJob) -> EditResult:
        check_job(job)
        dropped = unused_quality(job)
        if dropped:
            log.info("model %s: gemini has no place for %s; dropped", self.id, ", ".join(dropped))
        request = await anyio.to_thread.run_sync(build_request, job, self.upstream_model)
        answers = await self.call_n_times(request, job.n)
        return EditResult(
            images=[OutputImage(data=a.image, content_type=sniff_content_type(a.image or b""))
                    for a in answers],
            revised_prompt=answers[0].text,
            usage={key: sum(a.usage.get(key, 0) for a in answers) for key in answers[0].usage} or None,
            extra={"dropped_params": dropped},
        )

    async def call_n_times(self, request: tuple[str, str, dict[str, Any]], n: int) -> list[GeminiAnswer]:
        """``n`` calls at once; the first failure cancels the calls still running."""
        answers: list[GeminiAnswer | None] = [None] * n
        failures: list[RetouchError] = []

        async def call(index: int) -> None:
            try:
                answers[index] = await self.call_once(request, index)
            except RetouchError as error:
                failures.append(error)
                group.cancel_scope.cancel()

        async with anyio.create_task_group() as group:
            for index in range(n):
                group.start_soon(call, index)
        if failures:
            raise failures[0]
        return answers  # type: ignore[return-value]

    async def call_once(self, request: tuple[str, str, dict[str, Any]], index: int) -> GeminiAnswer:
        method, path, kwargs = request
        response = await self.request(method, path, headers={"x-goog-api-key": self.api_key()},
                                      **with_seed(kwargs, index))
        try:
            body = response.json()
        except ValueError as exc:
            raise UpstreamError("gemini answered with something other than JSON.") from exc
        return self.checked(parse_response(body if isinstance(body, dict) else {}))

    def checked(self, answer: GeminiAnswer) -> GeminiAnswer:
        """The answer when it holds an image; otherwise the error that says why not."""
        if answer.block_reason:
            raise self.content_blocked(f"the prompt was refused ({answer.block_reason}).")
        if answer.finish_reason in BLOCK_REASONS:
            why = f" {answer.finish_message}" if answer.finish_message else ""
            raise self.content_blocked(f"the image was withheld ({answer.finish_reason}).{why}")
        if answer.image is None:
            said = f' It said: "{answer.text[:200]}"' if answer.text else ""
            raise UpstreamError(
                f"gemini answered without an image (finishReason "
                f"{answer.finish_reason or 'missing'}).{said} Rephrase the prompt as an "
                "instruction to draw or edit the image and try again.")
        if sniff_content_type(answer.image) is None:
            raise UpstreamError("gemini returned an image that is not PNG, JPEG or WebP.")
        return answer

    def upstream_error(self, response: httpx.Response) -> RetouchError:
        # Google reports a wrong key as 400 INVALID_ARGUMENT; treat it as the 401 it is.
        if response.status_code == 400 and "API_KEY_INVALID" in _error_reasons(response):
            return super().upstream_error(httpx.Response(401, request=response.request))
        return super().upstream_error(response)


def _error_reasons(response: httpx.Response) -> set[str]:
    try:
        details = (response.json().get("error") or {}).get("details") or []
    except (ValueError, AttributeError):
        return set()
    return {str(d.get("reason")) for d in details if isinstance(d, dict)}
