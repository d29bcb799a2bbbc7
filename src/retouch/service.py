"""One edit or generation, start to finish; no HTTP types in here.

resolve model → check the request against its capabilities → gather inputs → run the
backend → encode and store (or base64) the outputs → ``ImagesResponse``.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import numpy as np
from PIL import Image

from retouch.auth.keys import ANONYMOUS, Principal
from retouch.config import Settings
from retouch.engine.codecs import CONTENT_TYPES, encode, flatten_alpha
from retouch.errors import InvalidRequestError, ModelUnavailableError
from retouch.fetch import UrlFetcher
from retouch.inputs import InputImage, InputLimits, load_input, load_inputs
from retouch.offload import SMALL_WORK_BYTES, run_sized
from retouch.protocol import EditRequest, ImageData, ImageParams, ImagesResponse, Usage
from retouch.providers.base import EditJob, EditModel, EditResult, OutputImage

# Where a backend sends partial images while it works: (index, pixels), from any thread.
PartialSink = Callable[[int, np.ndarray], None]
from retouch.providers.registry import ModelRegistry
from retouch.providers.transport import InputLinks
from retouch.storage import Storage
from retouch.storage.signing import UrlSigner

log = logging.getLogger("retouch.service")


@dataclass
class Served:
    """A finished request: the response body and what the HTTP layer reports in headers."""

    response: ImagesResponse
    model: str
    dropped_params: list[str]
    cost_usd: float | None
    upstream_ms: float | None = None  # time spent in the backend that served
    seed: int | None = None  # the seed a local model used, to reproduce the result


@dataclass
class Ready:
    """A request that passed every check, its inputs loaded: the model and the job."""

    model: EditModel
    params: ImageParams
    job: EditJob


@dataclass
class Delivered:
    """An encoded output: bytes, and where it went (a URL, base64, or both empty)."""

    data: bytes
    url: str = ""
    b64_json: str = ""


class EditService:
    """The orchestration of DESIGN.md's data flow, shared by the HTTP API and the CLI."""

    def __init__(self, settings: Settings, registry: ModelRegistry, storage: Storage,
                 fetcher: UrlFetcher, signer: UrlSigner) -> None:
        self.settings = settings
        self.registry = registry
        self.storage = storage
        self.fetcher = fetcher
        self.signer = signer
        self.limits = InputLimits(
            max_images=settings.max_images,
            max_pixels=settings.max_pixels,
            max_bytes=settings.max_upload_bytes,
        )
        self._threads = settings.engine_threads or os.cpu_count() or 1
        self._encoders: anyio.CapacityLimiter | None = None  # made inside the event loop

    async def edit(self, request: EditRequest, base_url: str, principal: Principal = ANONYMOUS) -> Served:
        """Edit ``request.images`` (the first is the one edited) as the prompt says."""
        return await self.run(await self.ready_edit(request, principal), base_url)

    async def generate(self, params: ImageParams, base_url: str, principal: Principal = ANONYMOUS) -> Served:
        """Create images from the prompt alone."""
        return await self.run(self.ready_generation(params, principal), base_url)

    async def ready_edit(self, request: EditRequest, principal: Principal = ANONYMOUS) -> Ready:
        """Every check an edit gets, and its inputs loaded: what ``run`` needs. Nothing
        is spent yet, so the HTTP layer does this before quotas and idempotency."""
        params = request.params
        model = self.prepare(params, editing=True, image_count=len(request.images),
                             has_mask=request.mask is not None, principal=principal)
        options = model.parse_options(params.options)
        images = await load_inputs(request.images, fetcher=self.fetcher, limits=self.limits)
        mask = await self._load_mask(request, images)
        return Ready(model, params, self._job(params, images, mask, options, principal))

    def ready_generation(self, params: ImageParams, principal: Principal = ANONYMOUS) -> Ready:
        """Every check a generation gets: what ``run`` needs."""
        model = self.prepare(params, editing=False, image_count=0, has_mask=False, principal=principal)
        options = model.parse_options(params.options)
        return Ready(model, params, self._job(params, [], None, options, principal))

    async def run(self, ready: Ready, base_url: str, partials: PartialSink | None = None) -> Served:
        """Run the backend; ``partials`` receives partial images while it works."""
        job = ready.job
        job.partials = partials
        job.links = self._input_links() if job.images else None
        try:
            result = await ready.model.edit(job)
        finally:
            if job.links is not None:
                await job.links.close()
        return await self.serve(ready.model, result, ready.params, base_url)

    def prepare(self, params: ImageParams, *, editing: bool, image_count: int, has_mask: bool,
                principal: Principal = ANONYMOUS) -> EditModel:
        """Resolve the model and reject what it cannot do (or the caller may not use),
        before any work is done."""
        model = self.registry.resolve(params.model)
        principal.check_model(model.id, model.aliases)
        availability = model.availability()
        if not availability.available:
            raise ModelUnavailableError(
                f"{model.id} is unavailable: {availability.reason}. Fix: {availability.fix}",
                param="model",
            )
        check_request(model, params, editing=editing, image_count=image_count, has_mask=has_mask,
                      settings=self.settings)
        _log_unused(model, params)
        return model

    async def _load_mask(self, request: EditRequest, images: list[InputImage]) -> InputImage | None:
        if request.mask is None:
            return None
        mask = await load_input(request.mask, 0, fetcher=self.fetcher, limits=self.limits)
        first = images[0]
        if (mask.width, mask.height) != (first.width, first.height):
            raise InvalidRequestError(
                f"The mask is {mask.width}x{mask.height} but the first image is "
                f"{first.width}x{first.height}; they must be the same size.",
                param="mask",
                code="invalid_mask",
            )
        return mask

    def _input_links(self) -> InputLinks | None:
        if not self.settings.lends_input_links:
            return None
        return InputLinks(self.storage, self.settings.public_url,
                          self.settings.input_link_ttl)

    def _job(self, params: ImageParams, images, mask, options, principal: Principal = ANONYMOUS) -> EditJob:
        return EditJob(
            prompt=params.prompt, images=images, mask=mask, n=params.n, size=params.size_wh,
            seed=params.seed, background=params.background, output_format=params.encoding,
            output_compression=params.output_compression, quality=params.quality,
            input_fidelity=params.input_fidelity, user=params.user, options=options,
            partial_images=params.partial_images or 0, caller=principal.key_id,
        )

    async def serve(self, model: EditModel, result: EditResult, params: ImageParams,
                    base_url: str) -> Served:
        dropped = list(result.extra.get("dropped_params", []))
        if dropped:
            log.info("model %s dropped parameters it cannot honour: %s", model.id, ", ".join(dropped))
        # A routed model reports which public model served and at whose price.
        price = result.extra.get("price_per_image", model.price_per_image)
        return Served(
            response=await self.respond(result, params, base_url),
            model=result.extra.get("served_by", model.id),
            dropped_params=dropped,
            cost_usd=None if price is None else price * len(result.images),
            upstream_ms=result.extra.get("upstream_ms"),
            seed=result.extra.get("seed"),
        )

    async def respond(self, result: EditResult, params: ImageParams, base_url: str) -> ImagesResponse:
        """Encode each output once, then store it or inline it as base64."""
        delivered = await self.deliver(result.images, params, base_url)
        first = _first_pixels(result.images)
        return ImagesResponse(
            created=int(time.time()),
            data=[ImageData(url=d.url, b64_json=d.b64_json, revised_prompt=result.revised_prompt)
                  for d in delivered],
            background=_background_of(first, params),
            output_format=params.encoding,
            quality=params.quality,
            size=f"{first.shape[1]}x{first.shape[0]}" if first is not None else None,
            usage=Usage(**result.usage) if result.usage else None,
        )

    async def deliver(self, outputs: list[OutputImage], params: ImageParams, base_url: str) -> list[Delivered]:
        delivered: dict[int, Delivered] = {}
        for output in outputs:
            key = id(output)  # n identical outputs (the same object) are encoded once
            if key not in delivered:
                delivered[key] = await self._deliver_one(output, params, base_url)
        return [delivered[id(output)] for output in outputs]

    async def _deliver_one(self, output: OutputImage, params: ImageParams, base_url: str) -> Delivered:
        inline = params.delivery == "b64_json"
        if self._encoders is None:
            self._encoders = anyio.CapacityLimiter(self._threads)
        # An upstream's base64 passed on as it is costs nothing; encoding pixels does.
        work = 0 if inline and passes_through(output, params) else SMALL_WORK_BYTES + 1
        data, b64 = await run_sized(work, encode_output, output, params, inline, limiter=self._encoders)
        if inline:
            return Delivered(data=data, b64_json=b64)
        stored = await self.storage.put(data, CONTENT_TYPES[params.encoding])
        public = self.settings.public_url or base_url
        return Delivered(data=data, url=await self.storage.url_for(stored.name, base_url=public))


def passes_through(output: OutputImage, params: ImageParams) -> bool:
    """Whether the provider's encoded bytes already are what the client asked for."""
    return (output.pixels is None and output.content_type == CONTENT_TYPES[params.encoding]
            and params.output_compression is None and params.background != "opaque")


def encode_output(output: OutputImage, params: ImageParams, inline: bool) -> tuple[bytes, str]:
    """Bytes in the requested encoding (and their base64 when inlined). Runs in a thread
    unless the upstream's base64 is passed on."""
    as_sent = passes_through(output, params)
    if as_sent and inline and output.b64_json is not None:
        return b"", output.b64_json  # an upstream's base64, passed on without a round trip
    if as_sent:  # the provider's bytes already are what was asked for
        data = output.encoded()
    else:
        pixels = output.pixels if output.pixels is not None else _decode(output.encoded())
        if params.background == "opaque":
            pixels = flatten_alpha(pixels)
        quality = params.output_compression
        data = encode(pixels, params.encoding, quality=quality)
    return data, base64.b64encode(data).decode("ascii") if inline else ""


def _decode(data: bytes | None) -> np.ndarray:
    with Image.open(io.BytesIO(data or b"")) as img:
        return np.asarray(img.convert("RGBA" if "A" in img.getbands() else "RGB"))


def _first_pixels(outputs: list[OutputImage]) -> np.ndarray | None:
    return outputs[0].pixels if outputs and outputs[0].pixels is not None else None


def _background_of(pixels: np.ndarray | None, params: ImageParams) -> str | None:
    if pixels is None:
        return params.background
    has_alpha = pixels.ndim == 3 and pixels.shape[2] == 4 and params.background != "opaque"
    return "transparent" if has_alpha and params.encoding != "jpeg" else "opaque"


def check_request(model: EditModel, params: ImageParams, *, editing: bool, image_count: int,
                  has_mask: bool, settings: Settings) -> None:
    """The generic checks every backend gets: each failure is a 400 naming the param."""
    _check_prompt(params, settings)
    _check_mode(model, editing, image_count)
    _check_counts(model, params, image_count, settings)
    if has_mask and not model.supports_mask:
        raise InvalidRequestError(f"{model.id} does not accept a mask.", param="mask")
    _check_output(model, params, settings)


def _check_prompt(params: ImageParams, settings: Settings) -> None:
    if not params.prompt.strip():
        raise InvalidRequestError("prompt is required and must not be empty.", param="prompt",
                                  code="missing_required_parameter")
    if len(params.prompt) > settings.max_prompt_chars:
        raise InvalidRequestError(
            f"prompt is {len(params.prompt):,} characters; the limit is "
            f"{settings.max_prompt_chars:,}.", param="prompt", code="string_above_max_length")


def _check_mode(model: EditModel, editing: bool, image_count: int) -> None:
    if not editing and not model.supports_generation:
        raise InvalidRequestError(
            f"{model.id} edits images and cannot generate from a prompt alone; send at "
            "least one image (image, image[] or image_urls) to /v1/images/edits.",
            param="image", code="missing_image")
    if editing and not model.supports_edits:
        raise InvalidRequestError(f"{model.id} only generates images; it cannot edit them.",
                                  param="model")
    if editing and image_count < max(1, model.min_input_images):
        raise InvalidRequestError(
            f"An edit needs an image to edit: send 'image' (a file), 'image[]', 'image_urls' "
            f"or 'images'; {model.id} takes {max(1, model.min_input_images)} to "
            f"{model.max_input_images}. To create an image from a prompt alone, use "
            "/v1/images/generations.", param="image", code="missing_image")


def _check_counts(model: EditModel, params: ImageParams, image_count: int, settings: Settings) -> None:
    if params.n > model.max_n:
        raise InvalidRequestError(f"n={params.n} is above {model.id}'s maximum of {model.max_n}.",
                                  param="n")
    most = min(settings.max_images, model.max_input_images)
    if image_count > most:
        raise InvalidRequestError(
            f"{image_count} images were sent; {model.id} accepts at most {most} per request.",
            param="image", code="too_many_images")


def _check_output(model: EditModel, params: ImageParams, settings: Settings) -> None:
    if params.encoding not in model.output_formats:
        raise InvalidRequestError(
            f"output_format={params.encoding!r} is not offered by {model.id}; choose one of "
            f"{', '.join(model.output_formats)}.", param="output_format")
    if params.background == "transparent" and params.encoding == "jpeg":
        raise InvalidRequestError(
            "background='transparent' needs output_format png or webp; JPEG has no alpha.",
            param="background")
    if params.output_compression is not None and params.encoding == "png":
        raise InvalidRequestError(
            "output_compression applies to jpeg and webp output; PNG is lossless. Send "
            "output_format=jpeg or webp, or leave output_compression out.",
            param="output_compression")
    size = params.size_wh
    if size and max(size) > settings.max_output_side:
        raise InvalidRequestError(
            f"size={params.size} exceeds the largest side allowed, {settings.max_output_side} "
            "pixels (RETOUCH_MAX_OUTPUT_SIDE).", param="size")


def _log_unused(model: EditModel, params: ImageParams) -> None:
    for name in sorted(model.ignored_params):
        value = getattr(params, name, None)
        if value is not None:
            log.info("model %s does not use %s=%r; it has no effect", model.id, name, value)
    if params.options:
        log.info("passing options %s to model %s", sorted(params.options), model.id)
