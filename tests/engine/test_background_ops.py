"""Pixel properties of background removal (engine/ops/background.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from retouch.engine.ops import NO_CONTEXT
from retouch.engine.ops.background import RemoveBackground
from retouch.errors import InvalidRequestError
from tests.images import solid

BACKGROUND = (245, 245, 245)
SUBJECT = (200, 30, 30)


def product_shot(background=BACKGROUND) -> np.ndarray:
    """A red disc on a plain background."""
    image = solid(background, 64, 48)
    cv2.circle(image, (32, 24), 14, SUBJECT, -1)
    return image


def test_plain_background_becomes_transparent_and_subject_stays():
    image = product_shot()
    out = RemoveBackground().apply(image, NO_CONTEXT)
    assert out.shape == (48, 64, 4)
    assert np.all(out[:5, :, 3] == 0) and np.all(out[:, :5, 3] == 0)
    assert np.all(out[18:31, 26:39, 3] == 255)
    assert np.array_equal(out[..., :3], image)


def test_edge_is_feathered_inward_only():
    image = product_shot()
    alpha = RemoveBackground().apply(image, NO_CONTEXT)[..., 3]
    background = np.all(image == BACKGROUND, axis=2)
    assert np.all(alpha[background] == 0)  # no halo of background colour
    assert np.any((alpha > 0) & (alpha < 255))  # a soft edge on the subject


def test_background_colour_enclosed_by_the_subject_is_kept():
    image = product_shot()
    cv2.circle(image, (32, 24), 5, BACKGROUND, -1)  # a hole in the disc, not touching the border
    out = RemoveBackground().apply(image, NO_CONTEXT)
    assert out[24, 32, 3] == 255


def test_subject_touching_the_border_does_not_change_the_background_colour():
    image = product_shot()
    image[:, :10] = (20, 90, 200)  # a blue bar along the left edge
    out = RemoveBackground().apply(image, NO_CONTEXT)
    assert out[5, 40, 3] == 0 and out[24, 4, 3] == 255


def test_tolerance_decides_how_far_a_noisy_background_goes():
    noise = np.random.default_rng(3).integers(-12, 13, (48, 64, 3))
    image = np.clip(product_shot().astype(int) + noise, 0, 255).astype(np.uint8)
    loose = RemoveBackground(tolerance=40).apply(image, NO_CONTEXT)[..., 3]
    tight = RemoveBackground(tolerance=2).apply(image, NO_CONTEXT)[..., 3]
    assert (loose[:5] == 0).mean() > 0.95
    assert (tight[:5] == 0).mean() < 0.5


def test_gray_input_gives_rgba():
    gray = cv2.cvtColor(product_shot(), cv2.COLOR_RGB2GRAY)
    out = RemoveBackground().apply(gray, NO_CONTEXT)
    assert out.shape == (48, 64, 4)
    assert out[0, 0, 3] == 0 and out[24, 32, 3] == 255 and out[24, 32, 0] == gray[24, 32]


def test_existing_alpha_is_kept_where_lower():
    image = np.dstack([product_shot(), np.full((48, 64), 90, np.uint8)])
    before = image.copy()
    out = RemoveBackground().apply(image, NO_CONTEXT)
    assert np.array_equal(image, before)
    assert out[24, 32, 3] == 90 and out[0, 0, 3] == 0


def test_default_constructor_and_description():
    assert RemoveBackground().describe() == "remove background, tolerance 32"
    assert RemoveBackground(10).describe() == "remove background, tolerance 10"


@pytest.mark.parametrize("tolerance", [-1, 256, 10**6])
def test_impossible_tolerance_is_rejected(tolerance):
    with pytest.raises(InvalidRequestError) as caught:
        RemoveBackground(tolerance)
    assert caught.value.param == "prompt" and "0 to 255" in caught.value.message
