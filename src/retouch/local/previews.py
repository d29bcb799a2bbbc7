"""Partial images: a step's latents decoded into pictures, the way each pipeline decodes
its final latents (the lines at the end of its ``__call__``), for ``partial_images``.

Runs in the pipeline's worker thread, inside ``callback_on_step_end``; torch is there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PIL import Image


def _vae_images(pipe: Any, decoded: Any) -> list[Image.Image]:
    return pipe.image_processor.postprocess(decoded, output_type="pil")


def _instruct_pix2pix(pipe: Any, latents: Any, height: int, width: int) -> list[Image.Image]:
    decoded = pipe.vae.decode(latents / pipe.vae.config.scaling_factor, return_dict=False)[0]
    return _vae_images(pipe, decoded)


def _flux_kontext(pipe: Any, latents: Any, height: int, width: int) -> list[Image.Image]:
    latents = pipe._unpack_latents(latents, height, width, pipe.vae_scale_factor)
    latents = latents / pipe.vae.config.scaling_factor + pipe.vae.config.shift_factor
    return _vae_images(pipe, pipe.vae.decode(latents, return_dict=False)[0])


def _qwen_image_edit(pipe: Any, latents: Any, height: int, width: int) -> list[Image.Image]:
    import torch

    config = pipe.vae.config
    latents = pipe._unpack_latents(latents, height, width, pipe.vae_scale_factor).to(pipe.vae.dtype)
    mean = torch.tensor(config.latents_mean).view(1, config.z_dim, 1, 1, 1).to(latents.device, latents.dtype)
    std = torch.tensor(config.latents_std).view(1, config.z_dim, 1, 1, 1).to(latents.device, latents.dtype)
    decoded = pipe.vae.decode(latents * std + mean, return_dict=False)[0][:, :, 0]
    return _vae_images(pipe, decoded)


def _flux2_klein(pipe: Any, latents: Any, height: int, width: int) -> list[Image.Image]:
    import torch

    # The packed tokens follow the row-major position ids Klein made for them, so
    # unpacking is a reshape (what _unpack_latents_with_ids scatters them into).
    rows = 2 * (int(height) // (pipe.vae_scale_factor * 2)) // 2
    columns = 2 * (int(width) // (pipe.vae_scale_factor * 2)) // 2
    batch, _, channels = latents.shape
    latents = latents.permute(0, 2, 1).reshape(batch, channels, rows, columns)
    bn = pipe.vae.bn
    std = torch.sqrt(bn.running_var.view(1, -1, 1, 1) + pipe.vae.config.batch_norm_eps)
    latents = latents * std.to(latents.device, latents.dtype) + bn.running_mean.view(1, -1, 1, 1).to(
        latents.device, latents.dtype)
    latents = pipe._unpatchify_latents(latents)
    return _vae_images(pipe, pipe.vae.decode(latents.to(pipe.vae.dtype), return_dict=False)[0])


DECODERS: dict[str, Callable[[Any, Any, int, int], list[Image.Image]]] = {
    "instruct-pix2pix": _instruct_pix2pix,
    "flux-kontext": _flux_kontext,
    "dreamomni2": _flux_kontext,
    "qwen-image-edit": _qwen_image_edit,
    "qwen-image-edit-plus": _qwen_image_edit,
    "flux2-klein": _flux2_klein,
}


def preview_steps(total_steps: int, partial_images: int) -> set[int]:
    """The steps (0-based) after which a partial image is sent: ``partial_images`` of
    them, spread evenly, the last one before the final step."""
    if partial_images <= 0 or total_steps < 2:
        return set()
    count = min(partial_images, total_steps - 1)
    return {(k + 1) * (total_steps - 1) // (count + 1) for k in range(count)}
