"""Pixel properties of the colour and tone operations (engine/ops/color.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from retouch.engine.instructions import read_instructions
from retouch.engine.ops import NO_CONTEXT
from retouch.engine.ops.adjustments import Brightness, Contrast, Saturation, Temperature
from retouch.engine.ops.color import Equalize, Gamma, Grayscale, HueShift, Invert, Posterize, Sepia, Threshold
from retouch.errors import InvalidRequestError
from tests.images import gradient, solid

ALL_OPS = [Grayscale(), Sepia(), Invert(), Brightness(20), Contrast(30), Saturation(40), HueShift(90),
           Temperature(30), Gamma(2.2), Equalize(), Posterize(4), Threshold(128)]
# Operations that make a gray canvas colourful, and those that make a colour canvas gray.
TO_RGB = (Sepia, Temperature)
TO_GRAY = (Grayscale, Threshold)


def luma(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image.astype(np.float32)
    return cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2GRAY).astype(np.float32)


def gray_image() -> np.ndarray:
    return cv2.cvtColor(gradient(), cv2.COLOR_RGB2GRAY)


@pytest.mark.parametrize("op", ALL_OPS, ids=lambda op: op.describe())
def test_rgb_input_keeps_size_and_is_not_modified(op):
    image = gradient()
    before = image.copy()
    out = op.apply(image, NO_CONTEXT)
    assert np.array_equal(image, before)
    assert out.dtype == np.uint8 and out.shape[:2] == (48, 64)
    assert out.ndim == (2 if isinstance(op, TO_GRAY) else 3)


@pytest.mark.parametrize("op", ALL_OPS, ids=lambda op: op.describe())
def test_rgba_input_keeps_its_alpha(op):
    image = gradient(alpha=True)
    image[:, :10, 3] = 0
    before = image.copy()
    out = op.apply(image, NO_CONTEXT)
    assert np.array_equal(image, before)
    assert out.shape == (48, 64, 4)
    assert np.array_equal(out[..., 3], image[..., 3])


@pytest.mark.parametrize("op", ALL_OPS, ids=lambda op: op.describe())
def test_gray_input_stays_gray_unless_the_op_adds_colour(op):
    image = gray_image()
    out = op.apply(image, NO_CONTEXT)
    assert out.dtype == np.uint8 and out.shape[:2] == image.shape
    if isinstance(op, TO_RGB):
        assert out.shape == (48, 64, 3) and not np.array_equal(out[..., 0], out[..., 2])
    else:
        assert out.ndim == 2


@pytest.mark.parametrize("op", ALL_OPS, ids=lambda op: op.describe())
def test_rgba_result_matches_rgb_result(op):
    rgba = gradient(alpha=True)
    from_rgba = op.apply(rgba, NO_CONTEXT)[..., :3]
    from_rgb = op.apply(gradient(), NO_CONTEXT)
    if from_rgb.ndim == 2:
        from_rgb = np.dstack([from_rgb] * 3)
    assert np.array_equal(from_rgba, from_rgb)


def test_sepia_orders_channels_red_green_blue():
    out = Sepia().apply(gradient(), NO_CONTEXT).astype(int)
    assert np.all(out[..., 0] >= out[..., 1]) and np.all(out[..., 1] >= out[..., 2])
    assert (out[..., 0] - out[..., 2]).mean() > 20


def test_sepia_colours_a_gray_image():
    out = Sepia().apply(np.full((8, 8), 100, np.uint8), NO_CONTEXT)
    assert out.shape == (8, 8, 3)
    assert tuple(out[0, 0]) == (135, 120, 94)


def test_invert_twice_is_identity_and_black_becomes_white():
    for image in (gradient(), gradient(alpha=True), gray_image()):
        once = Invert().apply(image, NO_CONTEXT)
        assert np.array_equal(Invert().apply(once, NO_CONTEXT), image)
    assert np.all(Invert().apply(solid((0, 0, 0)), NO_CONTEXT) == 255)
    assert np.array_equal(Invert().apply(gradient(), NO_CONTEXT), 255 - gradient())


def test_brightness_scales_the_mean():
    image = solid((100, 50, 20))
    assert tuple(Brightness(20).apply(image, NO_CONTEXT)[0, 0]) == (120, 60, 24)
    assert tuple(Brightness(-50).apply(image, NO_CONTEXT)[0, 0]) == (50, 25, 10)
    assert np.all(Brightness(-100).apply(gradient(), NO_CONTEXT) == 0)
    assert Brightness(0).apply(image, NO_CONTEXT) is image


def test_brightness_saturates_instead_of_wrapping():
    out = Brightness(400).apply(solid((200, 10, 0)), NO_CONTEXT)
    assert tuple(out[0, 0]) == (255, 50, 0)


def test_contrast_spreads_values_around_the_mean():
    image = gradient() // 2 + 64  # mid-range, so +50% does not clip
    more = Contrast(50).apply(image, NO_CONTEXT)
    less = Contrast(-50).apply(image, NO_CONTEXT)
    assert luma(more).std() > luma(image).std() * 1.3
    assert luma(less).std() < luma(image).std() * 0.6
    assert abs(luma(less).mean() - luma(image).mean()) < 2


def test_contrast_minus_100_is_flat_gray():
    out = Contrast(-100).apply(gradient(), NO_CONTEXT)
    assert out.max() - out.min() <= 1


def test_saturation_moves_colours_from_their_gray():
    image = solid((160, 100, 80))
    more = Saturation(50).apply(image, NO_CONTEXT).astype(int)[0, 0]
    gone = Saturation(-100).apply(image, NO_CONTEXT)[0, 0]
    assert more[0] - more[2] > 80 * 1.4
    assert gone[0] == gone[1] == gone[2]
    assert abs(int(gone[0]) - int(luma(image)[0, 0])) <= 1


def test_saturation_leaves_grays_alone():
    gray = gray_image()
    assert Saturation(80).apply(gray, NO_CONTEXT) is gray
    neutral = solid((90, 90, 90))
    assert np.array_equal(Saturation(80).apply(neutral, NO_CONTEXT), neutral)


def test_hue_shift_moves_red_to_green_and_blue():
    red = solid((255, 0, 0), 4, 4)
    green = HueShift(120).apply(red, NO_CONTEXT)[0, 0].astype(int)
    blue = HueShift(-120).apply(red, NO_CONTEXT)[0, 0].astype(int)
    assert green[1] > 240 and green[0] < 15 and green[2] < 15
    assert blue[2] > 240 and blue[0] < 15 and blue[1] < 15


def test_hue_shift_full_turn_and_round_trip():
    image = gradient()
    assert HueShift(360).apply(image, NO_CONTEXT) is image
    back = HueShift(-90).apply(HueShift(90).apply(image, NO_CONTEXT), NO_CONTEXT)
    assert np.abs(back.astype(int) - image).mean() < 3


def test_warmer_and_cooler_move_red_against_blue():
    image = solid((100, 100, 100))
    warm = Temperature(40).apply(image, NO_CONTEXT)[0, 0]
    cool = Temperature(-40).apply(image, NO_CONTEXT)[0, 0]
    assert tuple(warm) == (120, 100, 80)
    assert tuple(cool) == (80, 100, 120)
    assert Temperature(20).describe() == "warmer 20%" and Temperature(-20).describe() == "cooler 20%"


def test_gamma_above_one_lifts_midtones_and_keeps_ends():
    ramp = np.array([[0, 64, 128, 255]], np.uint8)
    lifted = Gamma(2.2).apply(ramp, NO_CONTEXT)
    lowered = Gamma(0.5).apply(ramp, NO_CONTEXT)
    assert lifted[0, 0] == 0 and lifted[0, 3] == 255
    assert lifted[0, 2] == round(255 * (128 / 255) ** (1 / 2.2))
    assert lowered[0, 1] < 64 < lifted[0, 1]
    assert Gamma(1).apply(ramp, NO_CONTEXT) is ramp


def test_equalize_stretches_a_dull_image_without_shifting_hue():
    y, x = np.mgrid[0:48, 0:64]
    dull = np.dstack([100 + x // 2, 90 + x // 3, np.full_like(x, 80)]).astype(np.uint8)
    out = Equalize().apply(dull, NO_CONTEXT)
    assert luma(out).max() - luma(out).min() > 200
    assert luma(dull).max() - luma(dull).min() < 40
    chroma_in = cv2.cvtColor(dull, cv2.COLOR_RGB2YCrCb)[..., 1:].astype(int)
    chroma_out = cv2.cvtColor(out, cv2.COLOR_RGB2YCrCb)[..., 1:].astype(int)
    assert np.abs(chroma_in - chroma_out).mean() < 3


def test_equalize_gray_spans_full_range():
    dull = (gray_image() // 4 + 100).astype(np.uint8)
    out = Equalize().apply(dull, NO_CONTEXT)
    assert out.min() == 0 and out.max() == 255


def test_posterize_keeps_only_evenly_spaced_levels():
    ramp = np.tile(np.arange(256, dtype=np.uint8), (4, 1))
    assert set(np.unique(Posterize(4).apply(ramp, NO_CONTEXT))) == {0, 85, 170, 255}
    assert len(np.unique(Posterize(2).apply(gradient(), NO_CONTEXT))) == 2
    assert Posterize(256).apply(ramp, NO_CONTEXT) is ramp


def test_threshold_makes_pure_black_and_white_at_the_level():
    image = np.dstack([np.array([[50, 127, 129, 200]], np.uint8)] * 3)
    out = Threshold(128).apply(image, NO_CONTEXT)
    assert out.ndim == 2 and out.tolist() == [[0, 0, 255, 255]]
    assert set(np.unique(Threshold(100).apply(gradient(), NO_CONTEXT))) == {0, 255}
    assert Threshold(250).apply(gradient(), NO_CONTEXT).mean() < Threshold(10).apply(gradient(), NO_CONTEXT).mean()


@pytest.mark.parametrize("make, value", [
    (Brightness, 401), (Brightness, -101), (Contrast, 1000), (Contrast, -150), (Saturation, 500),
    (Saturation, -101), (HueShift, 1e9), (Temperature, 150), (Temperature, -101), (Gamma, 0),
    (Gamma, 11), (Posterize, 1), (Posterize, 300), (Posterize, 3.5), (Threshold, 256), (Threshold, -1),
])
def test_impossible_parameters_are_400s_naming_the_value(make, value):
    with pytest.raises(InvalidRequestError) as caught:
        make(value)
    assert caught.value.param == "prompt" and caught.value.code == "invalid_value"
    assert f"{abs(value):g}" in caught.value.message


@pytest.mark.parametrize("prompt", ["brightness +500%", "gamma 0", "posterize 9 bits", "threshold at 300",
                                    "make it warmer by 200%", "darker by 0x", "shift the hue by 1000 degrees"])
def test_impossible_amounts_in_a_prompt_are_400s(prompt):
    with pytest.raises(InvalidRequestError) as caught:
        read_instructions(prompt)
    assert caught.value.status == 400 and caught.value.param == "prompt"


@pytest.mark.parametrize("prompt, expected", [
    ("desaturate", "grayscale"),
    ("desaturate by 50%", "saturation -50%"),
    ("black and white", "grayscale"),
    ("pure black and white", "threshold 128"),
    ("rotate the hue by 90 degrees", "hue shift +90°"),
    ("auto contrast", "equalize histogram"),
])
def test_colour_words_shared_with_other_phrases_go_to_the_right_op(prompt, expected):
    assert [op.describe() for op in read_instructions(prompt)] == [expected]
