"""``provider: diffusers``: open-weight editing pipelines on the user's own GPUs (or CPU).

``pip install 'retouch[local]'``; torch is imported only when a model first runs. Each
model id names a pipeline kind, its weights and how to place them (``local/spec.py``
documents every field). Jobs run in this process (``local/runtime.py``: load on first
use, least-recently-used eviction under ``RETOUCH_LOCAL_MEMORY_GB``, one job at a time
per device, callers served in turns) or, with ``backend: ray``, on a Ray Serve
deployment (``local/ray_serve.py``).

Per request: ``n`` is one batched call (``num_images_per_prompt``); ``seed`` makes the
result reproducible (the seed used is returned in ``x-retouch-seed``); the size is
snapped to the pipeline's grid within ``max_area`` and the result resized back to the
requested size (or the first image's); a ``mask`` keeps the edit inside it (the result
is laid over the original outside the mask); ``partial_images`` with ``stream`` sends
decoded intermediate steps. Backend fields: ``steps``, ``guidance_scale``,
``image_guidance_scale`` (instruct-pix2pix), ``negative_prompt``.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import time
from typing import Any, ClassVar

import anyio
import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from retouch.engine.pipeline import edit_region, keep_inside_region
from retouch.errors import (
    InvalidRequestError,
    ModelUnavailableError,
    ServiceUnavailableError,
)
from retouch.inputs import InputImage
from retouch.local.cache import DoesNotFitError
from retouch.local.families import snap
from retouch.local.previews import preview_steps
from retouch.local.spec import LocalSpec, SpecError, read_spec
from retouch.providers.base import (
    AVAILABLE,
    Availability,
    EditJob,
    EditModel,
    EditResult,
    OutputImage,
)
from retouch.providers.registry import ConfigError

# How long an availability verdict stands (it may look at the disk or import torch).
AVAILABILITY_TTL_S = 30.0


class DiffusersOptions(BaseModel):
    """Fields a client may send beside OpenAI's for a local model."""

    model_config = ConfigDict(extra="forbid")

    steps: int | None = Field(default=None, ge=1, le=200, description="num_inference_steps")
    guidance_scale: float | None = Field(default=None, ge=0, le=50)
    image_guidance_scale: float | None = Field(default=None, ge=0, le=20)
    negative_prompt: str | None = Field(default=None, max_length=4000)


class DiffusersEditModel(EditModel):
    provider: ClassVar[str] = "diffusers"
    Options = DiffusersOptions
    supports_mask = True
    max_n = 4
    ignored_params = frozenset({"quality", "input_fidelity", "user", "background"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        try:
            self.spec: LocalSpec = read_spec(self.id, self.config)
        except SpecError as exc:
            raise ConfigError(str(exc)) from exc
        self.max_input_images = self.spec.family.max_images
        self.max_n = int(self.config.get("max_n", self.max_n))
        self.license = self.spec.license
        self.backend: Any = None  # bound to the server's shared runtime (``bind``)
        self._verdict: tuple[float, Availability] | None = None

    def bind(self, registry: Any) -> None:
        """Share one runtime (the loaded pipelines, the device queues) with every local
        model of the registry; a ``backend: ray`` model talks to its deployment instead."""
        if self.spec.backend == "ray":
            from retouch.local.ray_serve import RayBackend

            self.backend = RayBackend.shared(registry, self.spec)
        else:
            from retouch.local.runtime import LocalRuntime

            budget = int(float(getattr(registry.settings, "local_memory_gb", 0) or 0) * 1e9)
            self.backend = registry.shared.setdefault("local-runtime", LocalRuntime(budget))

    # -- availability ------------------------------------------------------------------

    def availability(self) -> Availability:
        now = time.monotonic()
        if self._verdict is None or now - self._verdict[0] > AVAILABILITY_TTL_S:
            self._verdict = (now, self._check())
        return self._verdict[1]

    def _check(self) -> Availability:
        if self.spec.backend == "ray":  # weights and GPUs are the cluster's, not this host's
            return self.backend.availability() if self.backend is not None else AVAILABLE
        missing = [name for name in ("torch", "diffusers", "transformers") if importlib.util.find_spec(name) is None]
        if missing:
            return Availability(False, f"the local-model extra is not installed ({', '.join(missing)} missing)",
                                "pip install 'retouch[local]'")
        for weights, what in self._weights():
            verdict = _weights_verdict(weights, what)
            if verdict is not None:
                return verdict
        if self.spec.device.startswith("cuda") and not _cuda_available():
            return Availability(False, f"no CUDA device (device: {self.spec.device})",
                                "run on a machine with an NVIDIA GPU and a CUDA build of torch, or set "
                                "device: cpu (slow) or auto in the models file")
        return AVAILABLE

    def _weights(self) -> list[tuple[str, str]]:
        found = [(self.spec.weights, "weights")]
        found += [(lora.weights, "LoRA") for lora in self.spec.loras]
        if self.spec.rewriter:
            found.append((self.spec.rewriter, "rewriter weights"))
        return found

    # -- a job -------------------------------------------------------------------------

    async def edit(self, job: EditJob) -> EditResult:
        options: DiffusersOptions = job.options or DiffusersOptions()
        first = job.images[0]
        target = job.size or (first.width, first.height)
        if job.mask is not None and target != (first.width, first.height):
            raise InvalidRequestError(
                f"With a mask the result keeps the first image's size ({first.width}x{first.height}); "
                f"size={target[0]}x{target[1]} would change it. Leave size out or drop the mask.", param="size")
        family = self.spec.family
        working = snap(target, family.grid, self.spec.max_area)
        images = await anyio.to_thread.run_sync(_pictures, job.images, working, family.grid, self.spec.max_area)
        steps = options.steps or self.spec.steps
        call = family.call(job.prompt, images, size=working, n=job.n, steps=steps,
                           guidance=self._guidance(options), options=self._extra(options))
        seed = job.seed if job.seed is not None else secrets.randbelow(2**31)
        partials = getattr(job, "partials", None)
        previews = frozenset(preview_steps(steps, getattr(job, "partial_images", 0) or 0)) if partials else frozenset()
        on_preview = _preview_sink(partials, target) if previews else None
        try:
            outcome = await self.backend.run(self.spec, call, seed=seed, caller=getattr(job, "caller", "") or "",
                                             previews=previews, on_preview=on_preview)
        except DoesNotFitError as exc:
            raise ModelUnavailableError(f"{self.id} cannot be loaded: {exc}. Fix: raise "
                                        "RETOUCH_LOCAL_MEMORY_GB or set memory_gb lower.", param="model") from exc
        except Exception as exc:
            if type(exc).__name__ == "OutOfMemoryError":
                raise ServiceUnavailableError(f"{self.id} ran out of GPU memory for this request; try a "
                                              "smaller size or n, or again shortly.", code="out_of_memory") from exc
            raise
        pixels = await anyio.to_thread.run_sync(_results, outcome.images, target, job.mask, first)
        revised = outcome.prompt if outcome.prompt != job.prompt else ""
        return EditResult(images=[OutputImage(pixels=p) for p in pixels], revised_prompt=revised,
                          extra={"seed": outcome.seed})

    def _guidance(self, options: DiffusersOptions) -> float:
        return options.guidance_scale if options.guidance_scale is not None else self.spec.guidance

    def _extra(self, options: DiffusersOptions) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if options.image_guidance_scale is not None:
            if self.spec.family.kind != "instruct-pix2pix":
                raise InvalidRequestError(f"image_guidance_scale is for instruct-pix2pix models; {self.id} "
                                          f"is {self.spec.family.kind}.", param="image_guidance_scale")
            extra["image_guidance_scale"] = options.image_guidance_scale
        if options.negative_prompt is not None:
            extra["negative_prompt"] = options.negative_prompt
        return extra


# -- pictures in and out -------------------------------------------------------------------


def _pictures(images: list[InputImage], working: tuple[int, int], grid: int, max_area: int) -> list[Image.Image]:
    """RGB pictures for the pipeline: the first at the working size, references within
    ``max_area`` (their own aspect ratio kept)."""
    pictures = []
    for index, image in enumerate(images):
        picture = Image.fromarray(image.pixels()).convert("RGB")
        size = working if index == 0 else snap(picture.size, grid, max_area)
        pictures.append(picture if picture.size == size else picture.resize(size, Image.Resampling.LANCZOS))
    return pictures


def _results(images: list[Image.Image], target: tuple[int, int], mask: InputImage | None,
             first: InputImage) -> list[np.ndarray]:
    """Each result at the requested size, laid over the original outside the mask."""
    region = edit_region(mask)
    original = first.pixels() if region is not None else None
    out = []
    for image in images:
        pixels = np.asarray(_at(image.convert("RGB"), target))
        out.append(keep_inside_region(original, pixels, region) if region is not None else pixels)
    return out


def _at(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    return image if image.size == size else image.resize(size, Image.Resampling.LANCZOS)


def _preview_sink(partials: Any, target: tuple[int, int]):
    """Partial images go out at the requested size, the first of the batch only."""
    count = 0

    def sink(step: int, images: list[Image.Image]) -> None:
        nonlocal count
        partials(count, np.asarray(_at(images[0].convert("RGB"), target)))
        count += 1

    return sink


# -- availability helpers ------------------------------------------------------------------


def _weights_verdict(weights: str, what: str) -> Availability | None:
    """None when ``weights`` can be loaded; otherwise why not and the fix."""
    path = os.path.expanduser(weights)
    if weights.startswith(("/", ".", "~")) or os.path.exists(path):
        if os.path.exists(path):
            return None
        return Availability(False, f"{what} not found at {path}",
                            "download them there, or correct the path in RETOUCH_MODELS_FILE")
    if _in_hub_cache(weights) or not _offline():
        return None  # cached, or downloaded on first use
    return Availability(False, f"{what} {weights} are not downloaded and the hub is off (HF_HUB_OFFLINE)",
                        f"run `huggingface-cli download {weights}` where the hub is reachable, or point "
                        "weights at a local directory")


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import scan_cache_dir
    except ImportError:
        return False
    try:
        return any(repo.repo_id == repo_id for repo in scan_cache_dir().repos)
    except Exception:  # no cache directory yet
        return False


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())
