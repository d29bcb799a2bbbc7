"""Tiny editing pipelines with seeded random weights, saved the way real weights are.

``build_tiny(kind, directory)`` builds one pipeline offline from configs (component sizes
from diffusers' own tests, text encoders sized to the small tokenizers made here, so no
hub) and writes it with ``save_pretrained``; ``getattr(diffusers, PIPELINE_CLASSES[kind])
.from_pretrained(directory)`` loads it back through the path real weights take. Building
twice writes byte-identical weights. This module imports torch, diffusers and
transformers: import it after ``pytest.importorskip("diffusers")``.

What a caller must pass or patch for a 2-step run on 64x64 inputs to stay well under a
second (``call`` means a keyword argument of the pipeline call):

    instruct-pix2pix      nothing.
    flux-kontext          call ``height``, ``width``, ``max_area=height * width`` and
                          ``_auto_resize=False``; otherwise Kontext first resizes to one
                          of its ~1 MP resolutions (a run of minutes).
    qwen-image-edit       patch ``calculate_dimensions`` in
                          ``diffusers.pipelines.qwenimage.pipeline_qwenimage_edit``: the
                          pipeline calls it with ``1024 * 1024`` inline to size the
                          condition image (and the default output); no call argument
                          avoids it. ``patch_qwen_resizes`` does the patch.
    qwen-image-edit-plus  patch ``VAE_IMAGE_SIZE`` (~1 MP) and ``CONDITION_IMAGE_SIZE``
                          (384x384) in
                          ``diffusers.pipelines.qwenimage.pipeline_qwenimage_edit_plus``
                          and call ``height`` and ``width`` (else ~1 MP output).
                          ``patch_qwen_resizes`` does the patch.
    flux2-klein           input images of at least 64 px a side (Klein rejects smaller).
                          ``text_encoder_out_layers`` is a call argument, not config, so
                          it cannot be saved; instead the tiny text encoder is deep enough
                          (27 layers) for the default ``(9, 18, 27)``: pass nothing.

Loading the Qwen kinds where torchvision is missing (as in the test environment): plain
``from_pretrained`` fails, for these tiny weights and real ones alike, because
``Qwen2VLProcessor`` needs a video processor that transformers 5 only has with
torchvision. Call ``retouch.local.compat.prepare_loading(kind)`` first, as the production
loader does.
"""

from __future__ import annotations

import importlib
import json
import string
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderKLFlux2,
    AutoencoderKLQwenImage,
    EulerAncestralDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    Flux2KleinPipeline,
    Flux2Transformer2DModel,
    FluxKontextPipeline,
    FluxTransformer2DModel,
    QwenImageEditPipeline,
    QwenImageEditPlusPipeline,
    QwenImageTransformer2DModel,
    StableDiffusionInstructPix2PixPipeline,
    UNet2DConditionModel,
)
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTokenizer,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2Tokenizer,
    Qwen2VLImageProcessor,
    Qwen3Config,
    Qwen3ForCausalLM,
    T5Config,
    T5EncoderModel,
    T5Tokenizer,
)

KINDS = ("instruct-pix2pix", "flux-kontext", "qwen-image-edit", "qwen-image-edit-plus", "flux2-klein")

PIPELINE_CLASSES: dict[str, str] = {
    "instruct-pix2pix": "StableDiffusionInstructPix2PixPipeline",
    "flux-kontext": "FluxKontextPipeline",
    "qwen-image-edit": "QwenImageEditPipeline",
    "qwen-image-edit-plus": "QwenImageEditPlusPipeline",
    "flux2-klein": "Flux2KleinPipeline",
}

SEED = 0
QWEN_SPECIAL_TOKENS = ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                       "<|image_pad|>", "<|video_pad|>")
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny(kind: str, directory: Path) -> Path:
    """Build the tiny pipeline of ``kind`` with seeded random weights and save it under
    ``directory`` (created); return the directory to pass to from_pretrained."""
    if kind not in BUILDERS:
        raise ValueError(f"kind={kind!r} is not a tiny pipeline; use one of {', '.join(KINDS)}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):  # the caller's random state stays as it was
        BUILDERS[kind](directory)
    return directory


def tiny_pipelines(root: Path, kinds: Iterable[str] = KINDS) -> dict[str, Path]:
    """Build each of ``kinds`` once, under ``root/<kind>``: the directories by kind."""
    return {kind: build_tiny(kind, Path(root) / kind) for kind in kinds}


def patch_qwen_resizes(monkeypatch: pytest.MonkeyPatch, area: int = 64 * 64) -> None:
    """Make both Qwen edit pipelines resize their condition images to ``area`` pixels
    instead of ~1 MP, for tiny runs only (see the module docstring)."""
    edit = importlib.import_module("diffusers.pipelines.qwenimage.pipeline_qwenimage_edit")
    plus = importlib.import_module("diffusers.pipelines.qwenimage.pipeline_qwenimage_edit_plus")
    calculate_dimensions = edit.calculate_dimensions
    monkeypatch.setattr(edit, "calculate_dimensions",
                        lambda _area, ratio: calculate_dimensions(area, ratio))
    monkeypatch.setattr(plus, "VAE_IMAGE_SIZE", area)
    monkeypatch.setattr(plus, "CONDITION_IMAGE_SIZE", area)


# -- tokenizers: made from in-memory vocabularies -----------------------------------------


def byte_symbols() -> list[str]:
    """GPT-2's byte-to-unicode table: the 256 symbols byte-level BPE vocabularies use."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    others = [byte for byte in range(256) if byte not in printable]
    return [chr(code) for code in printable] + [chr(256 + n) for n in range(len(others))]


def clip_tokenizer() -> CLIPTokenizer:
    """514 tokens: start and end of text, then every byte alone and word-final."""
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        vocab.update((symbol + suffix, len(vocab)) for symbol in byte_symbols())
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def t5_tokenizer() -> T5Tokenizer:
    """A unigram vocabulary of ASCII letters, digits and punctuation, word-initial or not."""
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.5)]
    for char in string.ascii_letters + string.digits + string.punctuation:
        pieces += [("\u2581" + char, -2.0), (char, -3.0)]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=512)


def qwen2_tokenizer() -> Qwen2Tokenizer:
    """Every byte, ``<|endoftext|>`` and the chat and vision tokens Qwen pipelines use,
    with a minimal chat template (263 tokens)."""
    vocab = {symbol: index for index, symbol in enumerate(byte_symbols())}
    vocab["<|endoftext|>"] = len(vocab)
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=[])
    tokenizer.add_special_tokens({"additional_special_tokens": list(QWEN_SPECIAL_TOKENS)})
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


# -- text encoders --------------------------------------------------------------------------


def seeded(component: type, *args: Any, **kwargs: Any) -> Any:
    """``component(*args, **kwargs)`` with its random weights drawn from ``SEED``."""
    torch.manual_seed(SEED)
    return component(*args, **kwargs)


def clip_text_encoder(tokenizer: CLIPTokenizer) -> CLIPTextModel:
    return seeded(CLIPTextModel, CLIPTextConfig(
        vocab_size=len(tokenizer), bos_token_id=0, eos_token_id=1, pad_token_id=1,
        hidden_size=32, intermediate_size=37, projection_dim=32, num_attention_heads=4,
        num_hidden_layers=5, max_position_embeddings=77, hidden_act="gelu",
    ))


def t5_text_encoder(tokenizer: T5Tokenizer) -> T5EncoderModel:
    return seeded(T5EncoderModel, T5Config(
        vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    ))


def qwen2_5_vl_text_encoder(tokenizer: Qwen2Tokenizer) -> Qwen2_5_VLForConditionalGeneration:
    ids = tokenizer.convert_tokens_to_ids
    return seeded(Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLConfig(
        text_config={
            "hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 2,
            "num_attention_heads": 2, "num_key_value_heads": 2, "vocab_size": len(tokenizer),
            "bos_token_id": None, "eos_token_id": ids("<|im_end|>"), "rope_theta": 1e6,
            "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
        },
        vision_config={"depth": 2, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2,
                       "out_hidden_size": 16},
        hidden_size=16, vocab_size=len(tokenizer),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
    ))


# -- one builder per kind ------------------------------------------------------------------


def build_instruct_pix2pix(directory: Path) -> None:
    tokenizer = clip_tokenizer()
    StableDiffusionInstructPix2PixPipeline(
        vae=seeded(AutoencoderKL, block_out_channels=[32, 64], latent_channels=4,
                   down_block_types=["DownEncoderBlock2D"] * 2,
                   up_block_types=["UpDecoderBlock2D"] * 2),
        text_encoder=clip_text_encoder(tokenizer),
        tokenizer=tokenizer,
        unet=seeded(UNet2DConditionModel, block_out_channels=(32, 64), layers_per_block=2, sample_size=32,
                    in_channels=8, out_channels=4, cross_attention_dim=32,
                    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D")),
        scheduler=EulerAncestralDiscreteScheduler(),
        safety_checker=None, feature_extractor=None, image_encoder=None, requires_safety_checker=False,
    ).save_pretrained(directory)


def build_flux_kontext(directory: Path) -> None:
    tokenizer, tokenizer_2 = clip_tokenizer(), t5_tokenizer()
    FluxKontextPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=seeded(AutoencoderKL, block_out_channels=(4,), layers_per_block=1, latent_channels=1,
                   norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False,
                   shift_factor=0.0609, scaling_factor=1.5035),
        text_encoder=clip_text_encoder(tokenizer),
        tokenizer=tokenizer,
        text_encoder_2=t5_text_encoder(tokenizer_2),
        tokenizer_2=tokenizer_2,
        transformer=seeded(FluxTransformer2DModel, patch_size=1, in_channels=4, num_layers=1,
                           num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
                           joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=[4, 4, 8]),
        image_encoder=None, feature_extractor=None,
    ).save_pretrained(directory)


def build_qwen_image_edit(directory: Path, pipeline_class: type = QwenImageEditPipeline) -> None:
    tokenizer = qwen2_tokenizer()
    pipeline_class(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=seeded(AutoencoderKLQwenImage, base_dim=24, z_dim=4, dim_mult=[1, 2, 4], num_res_blocks=1,
                   temperal_downsample=[False, True], latents_mean=[0.0] * 4, latents_std=[1.0] * 4),
        text_encoder=qwen2_5_vl_text_encoder(tokenizer),
        tokenizer=tokenizer,
        transformer=seeded(QwenImageTransformer2DModel, patch_size=2, in_channels=16, out_channels=4,
                           num_layers=2, attention_head_dim=16, num_attention_heads=3,
                           joint_attention_dim=16, guidance_embeds=False, axes_dims_rope=(8, 4, 4)),
        processor=None,  # saved below: it cannot be constructed here without torchvision
    ).save_pretrained(directory)
    save_qwen2_vl_processor(directory, tokenizer)


def build_qwen_image_edit_plus(directory: Path) -> None:
    build_qwen_image_edit(directory, QwenImageEditPlusPipeline)


def build_flux2_klein(directory: Path) -> None:
    tokenizer = qwen2_tokenizer()
    Flux2KleinPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=seeded(AutoencoderKLFlux2, sample_size=32, block_out_channels=(4,), layers_per_block=1,
                   latent_channels=1, norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False,
                   down_block_types=("DownEncoderBlock2D",), up_block_types=("UpDecoderBlock2D",)),
        # 27 layers: the pipeline's default text_encoder_out_layers=(9, 18, 27) then exists,
        # so a caller passes nothing Klein 4B (36 layers) would not need.
        text_encoder=seeded(Qwen3ForCausalLM, Qwen3Config(
            hidden_size=16, intermediate_size=16, num_hidden_layers=27, num_attention_heads=2,
            num_key_value_heads=2, vocab_size=len(tokenizer), max_position_embeddings=512,
        )),
        tokenizer=tokenizer,
        transformer=seeded(Flux2Transformer2DModel, patch_size=1, in_channels=4, num_layers=1,
                           num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
                           joint_attention_dim=3 * 16,  # three text-encoder layers, stacked
                           timestep_guidance_channels=256, axes_dims_rope=[4, 4, 4, 4],
                           guidance_embeds=False),
        is_distilled=True,  # as FLUX.2 [klein] 4B: guidance_scale is ignored
    ).save_pretrained(directory)


BUILDERS = {
    "instruct-pix2pix": build_instruct_pix2pix,
    "flux-kontext": build_flux_kontext,
    "qwen-image-edit": build_qwen_image_edit,
    "qwen-image-edit-plus": build_qwen_image_edit_plus,
    "flux2-klein": build_flux2_klein,
}


def save_qwen2_vl_processor(directory: Path, tokenizer: Qwen2Tokenizer) -> None:
    """Save the pipeline's ``Qwen2VLProcessor`` as Qwen's own checkpoints lay it out
    (tokenizer files and ``preprocessor_config.json`` in ``processor/``) and list it in
    ``model_index.json``.

    Without torchvision, transformers 5 cannot construct a ``Qwen2VLProcessor`` (checking
    its absent video processor looks up a class only torchvision provides), so the pipeline
    was saved without one and its two parts are saved here instead.
    """
    tokenizer.save_pretrained(directory / "processor")
    Qwen2VLImageProcessor().save_pretrained(directory / "processor")
    index = directory / "model_index.json"
    components = json.loads(index.read_text())
    components["processor"] = ["transformers", "Qwen2VLProcessor"]
    index.write_text(json.dumps(components, indent=2, sort_keys=True) + "\n")
