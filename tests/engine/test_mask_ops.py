"""Pixel properties of the masked edits (engine/ops/mask.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from retouch.engine.ops import NO_CONTEXT, Context
from retouch.engine.ops.mask import BlurMask, FillMask, InpaintMask, PixelateMask
from retouch.errors import InvalidRequestError
from tests.images import gradient, solid

ALL_OPS = [InpaintMask(), FillMask((255, 0, 0), "red"), BlurMask(4), PixelateMask(8)]


def box_region(height: int = 48, width: int = 64, box=(12, 36, 16, 40)) -> np.ndarray:
    """True inside rows y0:y1, columns x0:x1."""
    y0, y1, x0, x1 = box
    region = np.zeros((height, width), bool)
    region[y0:y1, x0:x1] = True
    return region


def masked(region: np.ndarray, *inputs: np.ndarray) -> Context:
    return Context(list(inputs), region=lambda: region)


def formats() -> list[np.ndarray]:
    image = gradient()
    return [cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), image, gradient(alpha=True)]


@pytest.mark.parametrize("op", ALL_OPS, ids=lambda op: op.describe())
@pytest.mark.parametrize("image", formats(), ids=["gray", "rgb", "rgba"])
def test_only_the_region_changes_and_the_input_is_kept(op, image):
    before = image.copy()
    region = box_region()
    out = op.apply(image, masked(region, image))
    assert np.array_equal(image, before)
    assert out.shape[:2] == image.shape[:2] and out.dtype == np.uint8
    expected_outside = image if out.shape == image.shape else cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    assert np.array_equal(out[~region], expected_outside[~region])
    assert not np.array_equal(out[region], expected_outside[region])


@pytest.mark.parametrize("op", ALL_OPS, ids=lambda op: op.describe())
def test_rgba_alpha_kept_outside_the_region(op):
    image = gradient(alpha=True)
    out = op.apply(image, masked(box_region(), image))
    assert out.shape == (48, 64, 4)
    assert np.all(out[~box_region()][:, 3] == 200)


@pytest.mark.parametrize("op", ALL_OPS, ids=lambda op: op.describe())
def test_every_mask_op_needs_a_mask(op):
    assert op.needs_mask
    with pytest.raises(InvalidRequestError) as caught:
        op.apply(gradient(), NO_CONTEXT)
    assert caught.value.param == "mask" and caught.value.code == "missing_mask"


@pytest.mark.parametrize("op", ALL_OPS, ids=lambda op: op.describe())
def test_empty_region_leaves_canvas_unchanged(op):
    image = gradient()
    out = op.apply(image, masked(np.zeros((48, 64), bool), image))
    assert np.array_equal(out, image)


def test_region_follows_a_resized_canvas():
    small = box_region(24, 32, (6, 18, 8, 20))  # the mask of the input before a 2x resize
    image = gradient(64, 48)
    out = FillMask((0, 0, 255), "blue").apply(image, masked(small, image))
    assert np.all(out[12:36, 16:40] == (0, 0, 255))
    assert np.array_equal(out[:12], image[:12])


def test_inpaint_restores_surroundings():
    image = solid((120, 130, 140), 64, 48)
    image[20:28, 28:36] = (0, 0, 0)  # a dark blemish, exactly under the mask
    region = box_region(box=(20, 28, 28, 36))
    out = InpaintMask().apply(image, masked(region, image))
    assert np.abs(out[region].astype(int) - (120, 130, 140)).max() <= 3


def test_fill_paints_the_colour_and_makes_it_opaque():
    image = gradient(alpha=True)
    out = FillMask((255, 0, 0), "red").apply(image, masked(box_region(), image))
    assert np.all(out[box_region()] == (255, 0, 0, 255))


def test_fill_on_gray_stays_gray_for_gray_colours_only():
    gray = formats()[0]
    white = FillMask((255, 255, 255), "white").apply(gray, masked(box_region(), gray))
    red = FillMask((255, 0, 0), "red").apply(gray, masked(box_region(), gray))
    assert white.ndim == 2 and np.all(white[box_region()] == 255)
    assert red.shape == (48, 64, 3) and np.all(red[box_region()] == (255, 0, 0))


def test_blur_inside_region_equals_blurring_the_whole_image():
    image = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    region = box_region()
    out = BlurMask(4).apply(image, masked(region, image))
    whole = cv2.GaussianBlur(image, (9, 9), 0)
    assert np.array_equal(out[region], whole[region])
    assert out[region].std() < image[region].std() / 2


def test_pixelate_makes_constant_blocks_on_the_image_grid():
    image = gradient()
    region = box_region(box=(8, 40, 16, 48))  # whole 8px blocks of the grid
    out = PixelateMask(8).apply(image, masked(region, image))
    blocks = out[8:40, 16:48].reshape(4, 8, 4, 8, 3)
    assert np.all(blocks == blocks[:, :1, :, :1])  # every block one colour
    assert abs(int(blocks[0, 0, 0, 0, 0]) - int(image[8:16, 16:24, 0].mean())) <= 1


def test_pixelate_partial_edge_blocks_are_constant():
    image = gradient(60, 45)  # not a multiple of the block
    region = np.ones((45, 60), bool)
    out = PixelateMask(16).apply(image, masked(region, image))
    assert np.all(out[32:45, 48:60] == out[32, 48])


@pytest.mark.parametrize("make", [lambda: BlurMask(0), lambda: BlurMask(10**9),
                                  lambda: PixelateMask(1), lambda: PixelateMask(100000)])
def test_impossible_parameters_are_rejected(make):
    with pytest.raises(InvalidRequestError) as caught:
        make()
    assert caught.value.param == "prompt" and caught.value.code == "invalid_value"
