"""The tiny pipelines: each kind loads offline through ``from_pretrained`` from the
directory it was saved to, edits at the size asked, and is deterministic by seed."""

from __future__ import annotations

import pytest

diffusers = pytest.importorskip("diffusers")

import huggingface_hub.constants
import numpy as np
import torch
from PIL import Image

from retouch.local.compat import prepare_loading
from tests.images import gradient, photo, solid
from tests.local.tiny import (
    KINDS,
    PIPELINE_CLASSES,
    build_tiny,
    patch_qwen_resizes,
    tiny_pipelines,
)

SIZE = 64
FIRST = Image.fromarray(photo(SIZE, SIZE))
SECOND = Image.fromarray(gradient(SIZE, SIZE))
OTHER_SECOND = Image.fromarray(solid((20, 40, 220), SIZE, SIZE))
SIZED = {"height": SIZE, "width": SIZE}
CFG = {"true_cfg_scale": 4.0, "negative_prompt": " "}  # Qwen's real CFG needs both

# What each kind is called with besides the prompt, steps, n, generator and image(s).
ARGUMENTS = {
    "instruct-pix2pix": {},
    "flux-kontext": {**SIZED, "max_area": SIZE * SIZE, "_auto_resize": False},
    "qwen-image-edit": {**SIZED, **CFG},
    "qwen-image-edit-plus": {**SIZED, **CFG},
    "flux2-klein": SIZED,
}
MULTI_IMAGE_KINDS = ("qwen-image-edit-plus", "flux2-klein")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from more threads and lose much when the cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def directories(tmp_path_factory) -> dict:
    return tiny_pipelines(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def load(directories, monkeypatch):
    """Load a kind the way real weights load, with any hub access an error."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    # huggingface_hub reads the variable once, at import; its HTTP layer checks this.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    patch_qwen_resizes(monkeypatch)

    def load(kind: str):
        prepare_loading(kind)
        pipeline_class = getattr(diffusers, PIPELINE_CLASSES[kind])
        pipeline = pipeline_class.from_pretrained(directories[kind], torch_dtype=torch.float32)
        pipeline.set_progress_bar_config(disable=True)
        return pipeline

    return load


def edit(pipeline, kind: str, seed: int, second: Image.Image = SECOND) -> list[np.ndarray]:
    """Two edits of the input image(s) with ``seed``, as RGB arrays."""
    inputs = [FIRST, second] if kind in MULTI_IMAGE_KINDS else FIRST
    result = pipeline(prompt="make the sky purple", image=inputs, num_inference_steps=2,
                      num_images_per_prompt=2, generator=torch.Generator("cpu").manual_seed(seed),
                      **ARGUMENTS[kind])
    return [np.asarray(image.convert("RGB")) for image in result.images]


@pytest.mark.parametrize("kind", KINDS)
def test_loaded_pipeline_returns_n_distinct_images_of_the_requested_size(kind, load):
    pipeline = load(kind)

    assert type(pipeline).__name__ == PIPELINE_CLASSES[kind]
    images = edit(pipeline, kind, seed=0)

    assert [image.shape for image in images] == [(SIZE, SIZE, 3)] * 2
    assert not np.array_equal(images[0], images[1])


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_gives_identical_pixels_and_another_seed_other_pixels(kind, load):
    pipeline = load(kind)

    first, again, other = (edit(pipeline, kind, seed) for seed in (0, 0, 1))

    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], other[0])


@pytest.mark.parametrize("kind", MULTI_IMAGE_KINDS)
def test_second_input_image_changes_the_result(kind, load):
    pipeline = load(kind)

    with_gradient = edit(pipeline, kind, seed=0)
    with_blue = edit(pipeline, kind, seed=0, second=OTHER_SECOND)

    assert not np.array_equal(with_gradient[0], with_blue[0])


@pytest.mark.parametrize("kind", KINDS)
def test_building_twice_writes_identical_weights(kind, tmp_path):
    with torch.random.fork_rng(devices=[]):  # whatever the caller's random state
        torch.manual_seed(1)
        first = build_tiny(kind, tmp_path / "first")
        torch.manual_seed(2)
        second = build_tiny(kind, tmp_path / "second")

    weights = sorted(path.relative_to(first) for path in first.rglob("*.safetensors"))
    assert weights == sorted(path.relative_to(second) for path in second.rglob("*.safetensors"))
    assert len(weights) >= 3  # a denoiser, a VAE and text encoder(s)
    assert all((first / path).read_bytes() == (second / path).read_bytes() for path in weights)


def test_building_leaves_the_callers_random_state_alone(tmp_path):
    state = torch.random.get_rng_state()

    build_tiny("flux-kontext", tmp_path)

    assert torch.equal(torch.random.get_rng_state(), state)


def test_unknown_kind_is_refused_with_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="kind='sdxl'.*flux2-klein"):
        build_tiny("sdxl", tmp_path)
