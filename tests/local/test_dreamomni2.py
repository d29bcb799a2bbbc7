"""DreamOmni2 on tiny random weights: several condition images through Kontext, the LoRA,
and the instruction rewriter (its prompt, its fallback, its answer extraction)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

import torch
from diffusers import FluxKontextPipeline

from retouch.local.dreamomni2 import (
    DreamOmni2Pipeline,
    InstructionRewriter,
    build_messages,
    extract_instruction,
)
from tests.local.tiny import build_tiny
from tests.local.tiny_dreamomni2 import build_tiny_lora, build_tiny_rewriter

SIZE = 64
# Tiny sizes need these: Kontext otherwise first resizes to ~1 MP.
CALL = {"prompt": "put the woman from the second image on the road", "num_inference_steps": 2,
        "height": SIZE, "width": SIZE, "max_area": SIZE * SIZE, "_auto_resize": False, "output_type": "np"}


@pytest.fixture(scope="module", autouse=True)
def offline():
    """Any hub access while building or loading the tiny weights fails at once."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dreamomni2")
    kontext = build_tiny("flux-kontext", root / "kontext")
    return {"kontext": kontext, "lora": build_tiny_lora(kontext, root / "edit_lora.safetensors"),
            "rewriter": build_tiny_rewriter(root / "vlm")}


@pytest.fixture(scope="module")
def pipe(weights) -> DreamOmni2Pipeline:
    pipe = DreamOmni2Pipeline.from_pretrained(weights["kontext"])
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def rewriter(weights) -> InstructionRewriter:
    return InstructionRewriter.from_pretrained(str(weights["rewriter"]), device="cpu", dtype="float32",
                                               max_new_tokens=8)


@pytest.fixture(scope="module")
def source() -> Image.Image:
    return Image.new("RGB", (SIZE, SIZE), (200, 40, 30))


@pytest.fixture(scope="module")
def reference() -> Image.Image:
    return Image.linear_gradient("L").resize((SIZE, SIZE)).convert("RGB")


@pytest.fixture(scope="module")
def edited(pipe, source, reference) -> np.ndarray:
    """Both images through the pipeline, seed 0: what the other runs are compared with."""
    return run(pipe, [source, reference])


def run(pipe, image, seed: int = 0, **overrides) -> np.ndarray:
    arguments = {**CALL, "num_images_per_prompt": 2, **overrides}
    return pipe(image=image, generator=torch.Generator("cpu").manual_seed(seed), **arguments).images


# -- the pipeline ---------------------------------------------------------------------------


def test_two_images_give_n_images_of_the_asked_size_deterministically(pipe, source, reference, edited):
    assert edited.shape == (2, SIZE, SIZE, 3)
    assert np.array_equal(run(pipe, [source, reference]), edited)
    assert not np.array_equal(run(pipe, [source, reference], seed=1), edited)


def test_the_reference_image_changes_the_output(pipe, source, edited):
    assert np.abs(edited - run(pipe, [source])).max() > 1e-3


def test_one_image_is_exactly_flux_kontext(weights, pipe, source):
    kontext = FluxKontextPipeline.from_pretrained(weights["kontext"])
    kontext.set_progress_bar_config(disable=True)
    expected = run(kontext, source)
    assert np.array_equal(run(pipe, source), expected)
    assert np.array_equal(run(pipe, [source]), expected)


def test_references_follow_the_image_to_edit_in_position_ids(pipe, source):
    """DreamOmni2's layout: noise ids (first id 0), the image to edit (1), each reference
    (2, 3, …) at its own size, shifted right past the images before it."""
    seen = {}

    def record(module, args, kwargs):
        seen.setdefault("img_ids", kwargs["img_ids"].clone())
        seen.setdefault("hidden_states", kwargs["hidden_states"].shape)

    wide = Image.new("RGB", (48, 32), (0, 90, 200))  # tiny VAE scale 1, 2x2 packing: 16 rows, 24 columns
    hook = pipe.transformer.register_forward_pre_hook(record, with_kwargs=True)
    try:
        run(pipe, [source, wide, wide], num_images_per_prompt=1)
    finally:
        hook.remove()
    ids = seen["img_ids"]
    blocks = [ids[ids[:, 0] == number] for number in range(4)]
    assert [len(block) for block in blocks] == [32 * 32, 32 * 32, 16 * 24, 16 * 24]
    assert seen["hidden_states"][1] == len(ids)
    columns = [(int(block[:, 2].min()), int(block[:, 2].max())) for block in blocks]
    assert columns == [(0, 31), (0, 31), (32, 55), (56, 79)]
    assert [int(block[:, 1].max()) for block in blocks] == [31, 31, 15, 15]


def test_the_step_callback_sees_only_the_generated_latents(pipe, source, reference):
    shapes = []

    def after_step(pipeline, step, timestep, tensors):
        shapes.append(tuple(tensors["latents"].shape))
        return {}

    run(pipe, [source, reference], callback_on_step_end=after_step, callback_on_step_end_tensor_inputs=["latents"])
    assert shapes == [(2, (SIZE // 2) ** 2, 4)] * 2


def test_an_empty_image_list_is_refused(pipe):
    with pytest.raises(ValueError, match="image"):
        run(pipe, [])


def test_the_lora_changes_the_output(weights, source, reference, edited):
    pytest.importorskip("peft")
    pipe = DreamOmni2Pipeline.from_pretrained(weights["kontext"])
    pipe.set_progress_bar_config(disable=True)
    pipe.load_lora_weights(str(weights["lora"]), adapter_name="edit")
    pipe.set_adapters(["edit"], adapter_weights=[1.0])
    assert np.abs(run(pipe, [source, reference]) - edited).max() > 1e-2


# -- the instruction rewriter ------------------------------------------------------------------


def test_the_rewriter_sends_the_images_then_the_instruction_with_the_task(rewriter, source, reference):
    seen = []
    hook = rewriter.model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["input_ids"]), with_kwargs=True)
    try:
        rewriter.rewrite("Make the cat red.", [source, reference])
    finally:
        hook.remove()
    prompt = rewriter.processor.tokenizer.decode(seen[0][0])
    assert prompt.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n")
    assert prompt.count("<|vision_start|>") == 2
    assert prompt.endswith("<|vision_end|>Make the cat red. It is editing task.<|im_end|>\n<|im_start|>assistant\n")


def test_random_weights_give_no_instruction_so_the_prompt_is_kept(rewriter, source):
    assert rewriter.rewrite("Make the cat red.", [source]) == "Make the cat red."


def test_an_empty_generation_keeps_the_prompt(rewriter, source, reference, monkeypatch):
    answers = []
    decode = rewriter.processor.batch_decode

    def recording_decode(*args, **kwargs):
        answers.extend(decoded := decode(*args, **kwargs))
        return decoded

    monkeypatch.setattr(rewriter.processor, "batch_decode", recording_decode)
    monkeypatch.setattr(rewriter, "max_new_tokens", 1)
    # The one token generated is the end of the answer: the model says nothing at all.
    monkeypatch.setattr(rewriter.model.generation_config, "forced_eos_token_id",
                        rewriter.model.generation_config.eos_token_id)
    assert rewriter.rewrite("Make the cat red.", [source, reference]) == "Make the cat red."
    assert answers == [""]


@pytest.mark.parametrize(("generated", "instruction"), [
    ("<edit>Replace the lantern in the first image with the dog in the second image.</edit>",
     "Replace the lantern in the first image with the dog in the second image."),
    ("<gen> Two characters shake hands.\n</gen>", "Two characters shake hands."),
    ("\n<edit>Make it red.</edit>\n", "Make it red."),
    ("<edit>  </edit>", None),
    ("<edit>Make the first image", None),  # cut short by max_new_tokens
    ("Make it red.", None),
    ("", None),
])
def test_the_instruction_is_taken_from_inside_the_tags(generated, instruction):
    assert extract_instruction(generated) == instruction


def test_messages_put_the_images_first_and_name_the_task(source, reference):
    [message] = build_messages("Swap the hats.", [source, reference], task="generation")
    assert message["role"] == "user"
    assert [part["type"] for part in message["content"]] == ["image", "image", "text"]
    assert message["content"][0]["image"] is source
    assert message["content"][2]["text"] == "Swap the hats. It is generation task."


def test_an_unknown_task_is_refused(rewriter):
    with pytest.raises(ValueError, match="task='inpaint'"):
        InstructionRewriter(rewriter.model, rewriter.processor, task="inpaint")
