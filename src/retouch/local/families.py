"""What each supported pipeline needs: its class, how many images it reads, the size grid
it works on, its defaults, and how one job becomes the keyword arguments of its call.

    kind                   class                         images   grid  licence of the usual weights
    instruct-pix2pix       StableDiffusionInstructPix2PixPipeline   1   8   MIT (timbrooks/instruct-pix2pix)
    flux-kontext           FluxKontextPipeline              1       16  FLUX.1 [dev] non-commercial
    qwen-image-edit        QwenImageEditPipeline            1       16  Apache-2.0
    qwen-image-edit-plus   QwenImageEditPlusPipeline        1-3     16  Apache-2.0
    flux2-klein            Flux2KleinPipeline               1-4     16  Apache-2.0 (4B)
    dreamomni2             DreamOmni2Pipeline (ours)        1-4     16  FLUX.1 [dev] non-commercial

No torch here: the keyword arguments are plain values, the generator is made by the
caller (``runner.py``), so this module imports anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image


@dataclass(frozen=True)
class Call:
    """One pipeline call: the size it works at and its arguments (without ``generator``)."""

    width: int
    height: int
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class Family:
    """A pipeline kind. ``class_path`` is ``module:Class``; ``grid`` the multiple both
    sides must be; ``max_images`` how many input images it reads (first = edited)."""

    kind: str
    class_path: str
    max_images: int
    grid: int
    steps: int
    guidance: float
    license: str
    list_images: bool = False  # the call takes ``image=[...]`` rather than one image
    sized_call: bool = True  # the call takes ``height``/``width`` (IP2P follows its input)
    extra: dict[str, Any] = field(default_factory=dict)  # fixed arguments of every call

    def call(self, prompt: str, images: list[Image.Image], *, size: tuple[int, int], n: int,
             steps: int, guidance: float, options: dict[str, Any]) -> Call:
        """The arguments for ``prompt`` over ``images`` (already at ``size``)."""
        width, height = size
        kwargs: dict[str, Any] = {
            "prompt": prompt, "num_inference_steps": steps, "num_images_per_prompt": n,
            **self.guidance_arguments(guidance), **self.extra, **options,
        }
        kwargs["image"] = list(images) if self.list_images else images[0]
        if self.sized_call:
            kwargs.update(height=height, width=width)
        if self.kind in ("flux-kontext", "dreamomni2"):
            # Kontext otherwise resizes to its preferred ~1 MP resolutions itself.
            kwargs.update(max_area=width * height, _auto_resize=False)
        return Call(width, height, kwargs)

    def guidance_arguments(self, guidance: float) -> dict[str, Any]:
        if self.kind.startswith("qwen-image-edit"):
            # Qwen-Image-Edit ignores guidance_scale: real CFG needs true_cfg_scale > 1 and
            # a negative prompt (diffusers' documentation).
            return {"true_cfg_scale": guidance, "negative_prompt": " "}
        return {"guidance_scale": guidance}


FAMILIES: dict[str, Family] = {family.kind: family for family in (
    Family("instruct-pix2pix", "diffusers:StableDiffusionInstructPix2PixPipeline", max_images=1,
           grid=8, steps=20, guidance=7.5, license="MIT (timbrooks/instruct-pix2pix)",
           sized_call=False, extra={"image_guidance_scale": 1.5}),
    Family("flux-kontext", "diffusers:FluxKontextPipeline", max_images=1, grid=16, steps=28,
           guidance=3.5, license="FLUX.1 [dev] Non-Commercial License (FLUX.1-Kontext-dev)"),
    Family("qwen-image-edit", "diffusers:QwenImageEditPipeline", max_images=1, grid=16, steps=40,
           guidance=4.0, license="Apache-2.0 (Qwen/Qwen-Image-Edit)"),
    Family("qwen-image-edit-plus", "diffusers:QwenImageEditPlusPipeline", max_images=3, grid=16,
           steps=40, guidance=4.0, license="Apache-2.0 (Qwen/Qwen-Image-Edit-2509)", list_images=True),
    Family("flux2-klein", "diffusers:Flux2KleinPipeline", max_images=4, grid=16, steps=4,
           guidance=1.0, license="Apache-2.0 (FLUX.2 [klein] 4B); the 9B weights are non-commercial",
           list_images=True),
    Family("dreamomni2", "retouch.local.dreamomni2:DreamOmni2Pipeline", max_images=4, grid=16,
           steps=30, guidance=3.5, license="FLUX.1 [dev] Non-Commercial License (base weights); "
           "DreamOmni2 code Apache-2.0", list_images=True),
)}


def snap(size: tuple[int, int], grid: int, max_area: int) -> tuple[int, int]:
    """``size`` scaled down (never up) to fit ``max_area`` pixels, keeping its aspect
    ratio, each side cut down to a multiple of ``grid`` (at least one ``grid``)."""
    width, height = size
    shrink = min(1.0, (max_area / (width * height)) ** 0.5)
    return max(grid, int(width * shrink) // grid * grid), max(grid, int(height * shrink) // grid * grid)
