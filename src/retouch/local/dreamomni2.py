"""DreamOmni2 (dvlab-research/DreamOmni2, arXiv 2510.06679): FLUX.1 Kontext that reads
several images, and the Qwen2.5-VL model that rewrites the instruction first.

    rewriter = InstructionRewriter.from_pretrained(vlm_weights, device="cuda", dtype="bfloat16")
    pipe = DreamOmni2Pipeline.from_pretrained(kontext_weights, torch_dtype=torch.bfloat16)
    pipe.load_lora_weights(edit_lora, adapter_name="edit")
    prompt = rewriter.rewrite(instruction, [source, reference])
    pipe(image=[source, reference], prompt=prompt, height=..., width=...).images

How several images condition Kontext (read in DreamOmni2's ``pipeline_dreamomni2.py``):
every image is VAE-encoded at its own size and packed into tokens like Kontext's one
image; the tokens of all images follow the noise tokens in one sequence. Their position
ids say which image a token belongs to (first id: 1 for the image to edit, 2, 3, … for
the references) and the references sit to the right of the images before them (the
width id is offset by the packed widths of the earlier images). With one image this is
exactly FluxKontextPipeline.

Heavy imports (torch, diffusers, transformers) happen when this module is imported:
import it only where a local pipeline is loaded.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from diffusers import FluxKontextPipeline
from diffusers.pipelines.flux.pipeline_flux_kontext import PREFERRED_KONTEXT_RESOLUTIONS
from PIL import Image
from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor


class DreamOmni2Pipeline(FluxKontextPipeline):
    """FluxKontextPipeline whose ``image`` may be a list: the image to edit first, then the
    reference images. Every other argument keeps Kontext's name and meaning.

    Unlike Kontext, where a list of images is a batch (one image per prompt), a list here
    is one set of condition images shared by every prompt and every image generated.
    Loads from Kontext weights (``from_pretrained``) and takes Flux LoRAs
    (``load_lora_weights``) as Kontext does.
    """

    # The references of the call under way, already preprocessed. ``__call__`` sets them and
    # ``prepare_latents`` (which Kontext's ``__call__`` calls) reads them; a pipeline runs
    # one call at a time anyway (diffusers keeps the call's guidance scale on it too).
    _references: tuple[torch.Tensor, ...] = ()

    @torch.no_grad()
    def __call__(
        self,
        image: Any = None,
        prompt: str | list[str] | None = None,
        *,
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int = 28,
        guidance_scale: float = 3.5,
        num_images_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "pil",
        callback_on_step_end: Any = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        max_area: int = 1024**2,
        _auto_resize: bool = True,
        **kontext_arguments: Any,
    ) -> Any:
        """Kontext's call with ``image=[image_to_edit, *references]`` (or one image).

        ``kontext_arguments`` are FluxKontextPipeline's other arguments (``negative_prompt``,
        ``true_cfg_scale``, ``max_sequence_length``, ``latents``, ``return_dict``, …).
        Each reference is resized like the first image: to the preferred Kontext
        resolution nearest its aspect ratio when ``_auto_resize``, else kept at its own
        size; both cut down to a multiple of 16.
        """
        first, references = self._split_images(image)
        self._references = tuple(self._preprocess_reference(ref, _auto_resize) for ref in references)
        try:
            return super().__call__(
                first, prompt, height=height, width=width, num_inference_steps=num_inference_steps,
                guidance_scale=guidance_scale, num_images_per_prompt=num_images_per_prompt,
                generator=generator, output_type=output_type, callback_on_step_end=callback_on_step_end,
                callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs or ["latents"],
                max_area=max_area, _auto_resize=_auto_resize, **kontext_arguments,
            )
        finally:
            self._references = ()

    @staticmethod
    def _split_images(image: Any) -> tuple[Any, list[Any]]:
        if not isinstance(image, list):
            return image, []
        if not image:
            raise ValueError("`image` is an empty list: pass the image to edit first, then the references.")
        return image[0], list(image[1:])

    def _preprocess_reference(self, image: Any, auto_resize: bool) -> torch.Tensor:
        """A reference as a (1, 3, H, W) tensor in [-1, 1], sized as Kontext sizes its image;
        latents (``latent_channels`` channels) pass through, as Kontext lets them."""
        if isinstance(image, torch.Tensor) and image.ndim == 4 and image.shape[1] == self.latent_channels:
            return image
        height, width = self.image_processor.get_default_height_width(image)
        if auto_resize:
            aspect_ratio = width / height
            _, width, height = min((abs(aspect_ratio - w / h), w, h)
                                   for w, h in PREFERRED_KONTEXT_RESOLUTIONS)
        multiple_of = self.vae_scale_factor * 2
        width, height = width // multiple_of * multiple_of, height // multiple_of * multiple_of
        image = self.image_processor.resize(image, height, width)
        return self.image_processor.preprocess(image, height, width)

    def prepare_latents(self, image, batch_size, num_channels_latents, height, width, dtype, device,
                        generator=None, latents=None):
        """Kontext's latents for the first image, then each reference's tokens and ids
        appended after them (the first id numbers the image, the width id is offset)."""
        latents, image_latents, latent_ids, image_ids = super().prepare_latents(
            image, batch_size, num_channels_latents, height, width, dtype, device, generator, latents)
        if not self._references:
            return latents, image_latents, latent_ids, image_ids
        tokens, ids = [image_latents], [image_ids]
        offset = _packed_width(image_ids)
        for number, reference in enumerate(self._references, start=2):
            reference_tokens, reference_ids = self._encode_reference(
                reference, batch_size, num_channels_latents, dtype, device, generator)
            reference_ids[:, 0] = number
            reference_ids[:, 2] += offset
            offset += _packed_width(reference_ids)
            tokens.append(reference_tokens)
            ids.append(reference_ids)
        return latents, torch.cat(tokens, dim=1), latent_ids, torch.cat(ids, dim=0)

    def _encode_reference(self, reference: torch.Tensor, batch_size: int, num_channels_latents: int,
                          dtype: torch.dtype, device: torch.device,
                          generator: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Packed latent tokens of one reference, repeated for the batch, and their ids
        (first id 1, height and width from 0), as Kontext does for its image."""
        reference = reference.to(device=device, dtype=dtype)
        if reference.shape[1] != self.latent_channels:
            reference = self._encode_vae_image(image=reference, generator=generator)
        if batch_size % reference.shape[0]:
            raise ValueError(f"A reference image has a batch of {reference.shape[0]}, which does not divide "
                             f"the {batch_size} images generated: pass references one image each.")
        reference = reference.repeat(batch_size // reference.shape[0], 1, 1, 1)
        latent_height, latent_width = reference.shape[2:]
        tokens = self._pack_latents(reference, batch_size, num_channels_latents, latent_height, latent_width)
        ids = self._prepare_latent_image_ids(batch_size, latent_height // 2, latent_width // 2, device, dtype)
        ids[:, 0] = 1
        return tokens, ids


def _packed_width(ids: torch.Tensor) -> int:
    """How many token columns an image's ids span (their width ids start at its offset)."""
    return int(ids[:, 2].max() - ids[:, 2].min()) + 1


# -- the instruction rewriter ------------------------------------------------------------

# From DreamOmni2's inference_edit.py / inference_gen.py: one user turn holding the images
# (the image to edit first), then the instruction followed by " It is editing task." or
# " It is generation task."; no system prompt of their own (Qwen2.5-VL's chat template
# adds its default one). Greedy decoding; the answer comes wrapped in a tag pair, which
# their scripts cut off as ``text[6:-7]`` (``<edit>…</edit>``).
INSTRUCTION_TEMPLATE = "{instruction} It is {task} task."
TASKS = {"edit": "editing", "generation": "generation"}

_TAGGED = re.compile(r"<(\w+)>(.*?)</\1>", re.DOTALL)


def build_messages(instruction: str, images: list[Image.Image], task: str = "edit") -> list[dict[str, Any]]:
    """The chat DreamOmni2 sends its VLM: one user turn, the images, then the instruction."""
    text = INSTRUCTION_TEMPLATE.format(instruction=instruction, task=TASKS[task])
    content = [{"type": "image", "image": image} for image in images]
    return [{"role": "user", "content": [*content, {"type": "text", "text": text}]}]


def extract_instruction(generated: str) -> str | None:
    """The rewritten instruction inside the VLM's tag pair, stripped; None when the text
    holds no complete pair (cut short, or not DreamOmni2's VLM) or the pair is blank."""
    match = _TAGGED.search(generated)
    instruction = match.group(2).strip() if match else ""
    return instruction or None


def vlm_view(image: Image.Image) -> Image.Image:
    """An image as DreamOmni2 shows it to the VLM: RGB (transparency on white), resized
    to the preferred Kontext resolution nearest its aspect ratio."""
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        image = background
    image = image.convert("RGB")
    aspect_ratio = image.width / image.height
    _, width, height = min((abs(aspect_ratio - w / h), w, h) for w, h in PREFERRED_KONTEXT_RESOLUTIONS)
    return image.resize((width // 16 * 16, height // 16 * 16), Image.LANCZOS)


class ImageOnlyQwenProcessor(Qwen2_5_VLProcessor):
    """Qwen2_5_VLProcessor without its video processor.

    transformers 5 cannot load Qwen2.5-VL's video processor without torchvision, nor build
    the processor with ``video_processor=None`` (its class check looks the video class up
    and fails). Processors load the sub-processors their ``__init__`` names, so leaving
    ``video_processor`` out of it loads the tokenizer, image processor and chat template
    from the same files, with or without torchvision. The rewriter never sends video.
    """

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


class InstructionRewriter:
    """DreamOmni2's Qwen2.5-VL, turning an instruction about some images into the prompt
    its LoRA was trained on. ``task`` is ``edit`` (the edit LoRA) or ``generation``."""

    def __init__(self, model: Any, processor: Any, *, task: str = "edit", max_new_tokens: int = 512) -> None:
        if task not in TASKS:
            raise ValueError(f"task={task!r} is not one of {sorted(TASKS)}.")
        self.model = model
        self.processor = processor
        self.task = task
        self.max_new_tokens = max_new_tokens

    @classmethod
    def from_pretrained(cls, path: str, device: str | torch.device = "cpu",
                        dtype: str | torch.dtype = "bfloat16", *, task: str = "edit",
                        max_new_tokens: int = 512) -> InstructionRewriter:
        """The VLM and its processor from ``path`` (a hub id or a local directory), on
        ``device`` in ``dtype`` (a torch dtype or its name, e.g. ``"bfloat16"``)."""
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(path, dtype=dtype).to(device).eval()
        processor = ImageOnlyQwenProcessor.from_pretrained(path)
        return cls(model, processor, task=task, max_new_tokens=max_new_tokens)

    @torch.no_grad()
    def rewrite(self, prompt: str, images: list[Image.Image]) -> str:
        """The rewritten instruction, or ``prompt`` itself when the VLM gives nothing usable."""
        text = self.processor.apply_chat_template(build_messages(prompt, images, self.task), tokenize=False,
                                                  add_generation_prompt=True)
        inputs = self.processor(text=[text], images=[vlm_view(image) for image in images] or None,
                                padding=True, return_tensors="pt").to(self.model.device)
        generated = self.model.generate(**inputs, do_sample=False, max_new_tokens=self.max_new_tokens)
        new_tokens = generated[:, inputs["input_ids"].shape[1]:]
        answer = self.processor.batch_decode(new_tokens, skip_special_tokens=True,
                                             clean_up_tokenization_spaces=False)[0]
        return extract_instruction(answer) or prompt
