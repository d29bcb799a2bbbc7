"""Tiny offline stand-ins for DreamOmni2's extra weights: a Flux LoRA and the Qwen2.5-VL
instruction rewriter, random and seeded, a few hundred kB, no hub access. The Kontext base
they go with is ``tests.local.tiny.build_tiny("flux-kontext", …)``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import FluxTransformer2DModel
from safetensors.torch import save_file
from transformers import Qwen2VLImageProcessor

from tests.local.tiny import qwen2_5_vl_text_encoder, qwen2_tokenizer

# The Linear layers of Flux attention that diffusers' Flux LoRA training adapts.
LORA_TARGETS = ("attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0")

# Qwen2.5-VL-Instruct's chat template as its chat_template.json ships it: the rewriter's
# prompt depends on it (its default system turn, where the images go).
QWEN2_5_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_lora(kontext_dir: Path, path: Path, *, rank: int = 4, seed: int = 0) -> Path:
    """A LoRA for the tiny Kontext transformer written to ``path`` (a .safetensors file) in
    the diffusers key format ``load_lora_weights`` reads (``transformer.<module>.lora_A.weight``).
    A and B are both random, so unlike a freshly initialised LoRA it changes the output."""
    transformer = FluxTransformer2DModel.from_pretrained(Path(kontext_dir), subfolder="transformer")
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for name, module in transformer.named_modules():
        if isinstance(module, torch.nn.Linear) and name.endswith(LORA_TARGETS):
            state[f"transformer.{name}.lora_A.weight"] = torch.randn(rank, module.in_features, generator=generator)
            state[f"transformer.{name}.lora_B.weight"] = torch.randn(module.out_features, rank, generator=generator)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return path


def build_tiny_rewriter(directory: Path) -> Path:
    """A tiny seeded Qwen2.5-VL with its tokenizer, image processor and chat template, laid
    out like the real checkpoint (``processor_class: Qwen2_5_VLProcessor``) in ``directory``."""
    directory = Path(directory)
    tokenizer = qwen2_tokenizer()
    tokenizer.chat_template = QWEN2_5_VL_CHAT_TEMPLATE
    with torch.random.fork_rng(devices=[]):
        qwen2_5_vl_text_encoder(tokenizer).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    Qwen2VLImageProcessor().save_pretrained(directory)
    for name in ("tokenizer_config.json", "preprocessor_config.json"):
        config = json.loads((directory / name).read_text())
        config["processor_class"] = "Qwen2_5_VLProcessor"
        (directory / name).write_text(json.dumps(config, indent=2))
    return directory
