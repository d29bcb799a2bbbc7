"""Pixel properties of the filters: blur, sharpen, denoise, pixelate, vignette, emboss,
edges and the painterly looks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from retouch.engine.instructions import read_instructions
from retouch.engine.ops import NO_CONTEXT
from retouch.engine.ops.filters import (
    Blur, DetailEnhance, DetectEdges, Denoise, Emboss, Pixelate, Sharpen, Vignette, at_work_size,
)
from retouch.engine.ops.looks import Cartoon, OilPainting, PencilSketch, Watercolor
from retouch.errors import InvalidRequestError, UnsupportedInstructionError
from tests.images import gradient, solid

ALL = [Blur(2), Sharpen(1.0), Denoise(35), Pixelate(4), Vignette(0.5), Emboss(), DetectEdges(), Cartoon(),
       PencilSketch(), PencilSketch(colored=True), Watercolor(), OilPainting(), DetailEnhance()]


def noisy(width: int = 64, height: int = 48, sigma: float = 20, seed: int = 0) -> np.ndarray:
    """A mid-gray RGB image with Gaussian noise."""
    rng = np.random.default_rng(seed)
    return np.clip(128 + rng.normal(0, sigma, (height, width, 3)), 0, 255).astype(np.uint8)


def square(width: int = 64, height: int = 48) -> np.ndarray:
    """White with a black square in the middle: one strong edge all round."""
    image = solid((255, 255, 255), width, height)
    image[12:36, 20:44] = 0
    return image


def detail(image: np.ndarray) -> float:
    """How much fine detail an image holds: the spread of its Laplacian."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(gray.astype(np.float32), cv2.CV_32F).std())


@pytest.mark.parametrize("op", ALL, ids=lambda op: op.describe())
@pytest.mark.parametrize("kind", ["gray", "rgb", "rgba"])
def test_every_filter_takes_each_canvas_kind_and_keeps_size_and_alpha(op, kind):
    rgba = gradient(alpha=True)
    canvas = {"gray": cv2.cvtColor(rgba[..., :3], cv2.COLOR_RGB2GRAY), "rgb": rgba[..., :3].copy(), "rgba": rgba}[kind]
    before = canvas.copy()
    out = op.apply(canvas, NO_CONTEXT)
    assert out.dtype == np.uint8 and out.shape[:2] == canvas.shape[:2]
    assert np.array_equal(canvas, before), "the input must not be modified"
    if kind == "rgba":
        assert out.shape[2] == 4 and np.array_equal(out[..., 3], rgba[..., 3])


def test_blur_lowers_variance_more_with_a_bigger_radius():
    image = noisy()
    small, big = Blur(1).apply(image, NO_CONTEXT), Blur(5).apply(image, NO_CONTEXT)
    assert image.std() > 2 * small.std() > 2 * big.std()
    assert abs(float(big.mean()) - float(image.mean())) < 2


def test_blur_matches_a_gaussian_of_that_sigma():
    image = noisy()
    assert np.array_equal(Blur(3).apply(image, NO_CONTEXT), cv2.GaussianBlur(image, (0, 0), 3))


def test_sharpen_adds_detail_and_leaves_flat_areas_alone():
    image = cv2.GaussianBlur(noisy(), (0, 0), 1)
    assert detail(Sharpen(1.0).apply(image, NO_CONTEXT)) > 1.5 * detail(image)
    assert detail(Sharpen(2.0).apply(image, NO_CONTEXT)) > detail(Sharpen(0.5).apply(image, NO_CONTEXT))
    flat = solid((10, 120, 240))
    assert np.array_equal(Sharpen(3.0).apply(flat, NO_CONTEXT), flat)


def test_denoise_removes_noise_but_keeps_a_strong_edge():
    clean = square()
    rng = np.random.default_rng(1)
    dirty = np.clip(clean.astype(np.int16) + rng.integers(-12, 13, clean.shape), 0, 255).astype(np.uint8)
    out = Denoise(35).apply(dirty, NO_CONTEXT)
    assert cv2.PSNR(out, clean) > cv2.PSNR(dirty, clean) + 3
    assert out[24, 18].mean() > 200 and out[24, 21].mean() < 50  # either side of the square's edge


def test_pixelate_makes_constant_blocks_holding_their_mean():
    image = gradient(64, 48)
    out = Pixelate(8).apply(image, NO_CONTEXT)
    for y in range(0, 48, 8):
        for x in range(0, 64, 8):
            block = out[y:y + 8, x:x + 8].reshape(-1, 3)
            assert (block == block[0]).all()
            assert np.abs(block[0] - image[y:y + 8, x:x + 8].reshape(-1, 3).mean(0)).max() <= 1


def test_pixelate_cuts_the_edge_blocks_when_the_size_is_not_a_multiple():
    out = Pixelate(16).apply(gradient(40, 20), NO_CONTEXT)
    assert out.shape == (20, 40, 3)
    assert (out[16:, 32:] == out[16, 32]).all() and not (out[16:, 32:] == out[0, 0]).all()
    assert (out[:16, :16] == out[0, 0]).all()


def test_vignette_darkens_corners_by_its_strength_and_keeps_the_centre():
    image = solid((200, 200, 200), 65, 49)
    out = Vignette(0.5).apply(image, NO_CONTEXT)
    assert np.array_equal(out[24, 32], [200, 200, 200])
    assert abs(int(out[0, 0, 0]) - 100) <= 2 and abs(int(out[48, 64, 0]) - 100) <= 2
    row = out[24, 32:, 0].astype(int)
    assert (np.diff(row) <= 0).all() and row[-1] < row[0]
    assert Vignette(1.0).apply(image, NO_CONTEXT)[0, 0].max() == 0


def test_vignette_spans_strips_without_seams():
    out = Vignette(0.8).apply(solid((255, 255, 255), 8, 600), NO_CONTEXT)[:, 4, 0].astype(int)
    assert (np.diff(out[:300]) >= 0).all() and (np.diff(out[300:]) <= 0).all()


def test_emboss_is_mid_gray_on_flat_areas_with_light_and_dark_sides_at_edges():
    assert (Emboss().apply(solid((30, 90, 200)), NO_CONTEXT) == 128).all()
    out = Emboss().apply(square(), NO_CONTEXT).astype(int)
    assert out.ndim == 2 and out[24, 30] == 128
    left, right = out[24, 19] - 128, out[24, 44] - 128  # the square's left and right edges
    assert left * right < 0 and min(abs(left), abs(right)) > 100


def test_edges_are_white_on_the_squares_border_only():
    assert not DetectEdges().apply(solid((40, 50, 60)), NO_CONTEXT).any()
    out = DetectEdges().apply(square(), NO_CONTEXT)
    assert out.ndim == 2 and set(np.unique(out)) == {0, 255}
    assert out[24, 18:22].max() == 255 and out[30, 30] == 0 and out[2, 2] == 0


def test_cartoon_flattens_colour_and_draws_dark_lines_at_edges():
    image = square()
    image[:, :, 0] = 255  # red background, black square
    out = Cartoon().apply(image, NO_CONTEXT)
    assert (out[2:10, 2:10] == [255, 255, 255]).all()
    assert out[11:13, 20:44].max(axis=2).min() < 60  # a line along the square's top edge
    assert Cartoon().apply(noisy(sigma=10), NO_CONTEXT)[10:38, 10:54].std() < noisy(sigma=10).std()


def half_textured(low: tuple[int, int, int], high: tuple[int, int, int]) -> np.ndarray:
    """Flat light gray on the left, random colours between ``low`` and ``high`` on the right."""
    image = solid((220, 220, 220), 64, 48)
    image[:, 32:] = np.random.default_rng(0).integers(low, high, (48, 32, 3))
    return image


def test_pencil_sketch_draws_dark_strokes_on_texture_and_leaves_flat_areas_white():
    out = PencilSketch().apply(half_textured((0, 0, 0), (255, 255, 255)), NO_CONTEXT)
    assert out.ndim == 2 and out[:, :28].min() > 240 and out[:, 36:].mean() < 128


def test_coloured_pencil_sketch_keeps_the_hue():
    out = PencilSketch(colored=True).apply(half_textured((120, 0, 0), (255, 100, 100)), NO_CONTEXT)
    red, green, blue = out[:, 36:].reshape(-1, 3).mean(0)
    assert out.shape == (48, 64, 3) and red > green + 40 and red > blue + 40
    assert out[:, :28].min() > 240


@pytest.mark.parametrize("op", [Watercolor(), OilPainting()], ids=lambda op: op.describe())
def test_painting_looks_smooth_noise_and_keep_colour(op):
    image = np.clip(solid((60, 140, 200), 64, 48).astype(np.int16) + noisy(sigma=8).astype(np.int16) - 128,
                    0, 255).astype(np.uint8)
    out = op.apply(image, NO_CONTEXT)
    assert out[8:40, 8:56].std(axis=(0, 1)).max() < image[8:40, 8:56].std(axis=(0, 1)).min() / 2
    assert np.abs(out[8:40, 8:56].reshape(-1, 3).mean(0) - [60, 140, 200]).max() < 20


def test_detail_enhance_adds_local_contrast():
    image = cv2.GaussianBlur(noisy(sigma=30), (0, 0), 1.5)
    assert detail(DetailEnhance().apply(image, NO_CONTEXT)) > 1.3 * detail(image)


class SmallDetailEnhance(DetailEnhance):
    work_pixels = 600


class SmallWatercolor(Watercolor):
    work_pixels = 600


def test_big_images_are_filtered_at_work_size_and_come_back_full_size():
    image = cv2.GaussianBlur(noisy(sigma=30), (0, 0), 1.5)
    boosted = SmallDetailEnhance().apply(image, NO_CONTEXT)
    assert boosted.shape == image.shape
    # The boost is added to the full-size image, so its finest detail survives.
    assert detail(boosted) >= detail(image)
    assert abs(float(boosted.mean()) - float(image.mean())) < 5  # the boost is centred on 0
    assert SmallWatercolor().apply(image, NO_CONTEXT).shape == image.shape
    calls = []
    at_work_size(image, lambda small: calls.append(small.shape) or small, 600)
    assert calls[0][0] * calls[0][1] <= 600 and calls[0][2] == 3


@pytest.mark.parametrize("make", [
    lambda: Blur(0), lambda: Blur(1e9), lambda: Blur(-3), lambda: Sharpen(0), lambda: Sharpen(50),
    lambda: Denoise(0), lambda: Denoise(1000), lambda: Pixelate(1), lambda: Pixelate(100000),
    lambda: Vignette(0), lambda: Vignette(3),
])
def test_impossible_parameters_are_refused_naming_the_range(make):
    with pytest.raises(InvalidRequestError) as caught:
        make()
    assert caught.value.param == "prompt" and caught.value.code == "invalid_value"
    assert "out of range" in caught.value.message and " to " in caught.value.message


@pytest.mark.parametrize("prompt", ["blur by 1000000000 pixels", "pixelate with 1px blocks",
                                    "sharpen by 900%", "vignette 300%"])
def test_impossible_amounts_in_a_prompt_are_a_400(prompt):
    with pytest.raises(InvalidRequestError) as caught:
        read_instructions(prompt)
    assert caught.value.status == 400 and caught.value.param == "prompt"


@pytest.mark.parametrize("prompt, named", [
    ("add an outline", "add an outline"),
    ("motion blur", "motion"),
    ("add grain", "add grain"),
])
def test_phrases_that_are_not_these_filters_stay_unclaimed(prompt, named):
    with pytest.raises(UnsupportedInstructionError) as caught:
        read_instructions(prompt)
    assert f'"{named}"' in caught.value.message
