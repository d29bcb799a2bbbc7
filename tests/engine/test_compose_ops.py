"""Pixel properties of the operations that read several images: collages, overlays,
blends, background replacement, histogram matching and colour transfer."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from retouch.engine.instructions import read_instructions
from retouch.engine.ops import Context
from retouch.engine.ops.collage import Collage
from retouch.engine.ops.compose import Blend, Overlay, ReplaceBackground
from retouch.engine.ops.style import ColorTransfer, HistogramMatch
from retouch.errors import InvalidRequestError
from tests.images import gradient, solid

RED, BLUE, WHITE, BLACK = (255, 0, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)


def gray(width: int = 64, height: int = 48) -> np.ndarray:
    return cv2.cvtColor(gradient(width, height), cv2.COLOR_RGB2GRAY)


def transparent_left(width: int = 64, height: int = 48) -> np.ndarray:
    """The gradient with its left half fully transparent and its right half opaque."""
    image = gradient(width, height, alpha=True)
    image[..., 3] = 255
    image[:, : width // 2, 3] = 0
    return image


KINDS = {"gray": gray(), "rgb": gradient(), "rgba": gradient(alpha=True)}


# --- collage ---------------------------------------------------------------------------

def test_side_by_side_of_equal_images_is_exact_concatenation():
    left, right = gradient(), gradient()[::-1].copy()
    out = Collage("side by side").apply(left, Context([left, right]))
    assert np.array_equal(out, np.hstack([left, right]))


def test_side_by_side_scales_to_the_first_image_height():
    small = solid(BLUE, 32, 24)
    out = Collage("side by side").apply(gradient(), Context([gradient(), small]))
    assert out.shape == (48, 64 + 64, 3)
    assert np.array_equal(out[:, :64], gradient())
    assert np.all(out[:, 64:] == BLUE)


def test_stacked_shares_the_first_image_width_and_keeps_order():
    tall = solid(RED, 16, 32)
    out = Collage("stacked").apply(gradient(), Context([gradient(), tall]))
    assert out.shape == (48 + 128, 64, 3)
    assert np.array_equal(out[:48], gradient()) and np.all(out[48:] == RED)


def test_gap_is_filled_with_its_colour():
    image = solid(RED, 20, 10)
    out = Collage("side by side", gap=6, color=BLACK, color_name="black").apply(image, Context([image, image]))
    assert out.shape == (10, 46, 3)
    assert np.all(out[:, 20:26] == 0) and np.all(out[:, :20] == RED) and np.all(out[:, 26:] == RED)


def test_grid_is_square_and_empty_cells_take_the_background():
    images = [solid(RED, 20, 10), solid(BLUE, 20, 10), solid(RED, 20, 10)]
    out = Collage("grid", color=BLACK, color_name="black").apply(images[0], Context(images))
    assert out.shape == (20, 40, 3)
    assert np.all(out[:10, 20:] == BLUE) and np.all(out[10:, :20] == RED) and np.all(out[10:, 20:] == 0)


def test_grid_fits_each_image_inside_its_cell():
    wide = solid(BLUE, 40, 10)  # half the height of a 20x10 cell once fitted
    out = Collage("grid", 2, 1, color=WHITE).apply(solid(RED, 20, 10), Context([solid(RED, 20, 10), wide]))
    assert out.shape == (10, 40, 3)
    right = out[:, 20:]
    assert np.all(right[:2] == 255) and np.all(right[4:6] == BLUE) and np.all(right[-2:] == 255)


def test_grid_too_small_for_the_images_is_refused():
    images = [solid(RED, 8, 8)] * 5
    with pytest.raises(InvalidRequestError, match="2x2 grid"):
        Collage("grid", 2, 2).apply(images[0], Context(images))


def test_collage_is_capped_at_8192_pixels_per_side():
    strip = solid(RED, 4000, 10)
    out = Collage("side by side").apply(strip, Context([strip, strip, strip]))
    assert out.shape[1] <= 8192 and out.shape[0] < 10


@pytest.mark.parametrize("first, second, shape", [("gray", "gray", (48, 128)), ("gray", "rgba", (48, 128, 4)),
                                                  ("rgba", "rgb", (48, 128, 4)), ("rgb", "gray", (48, 128, 3))])
def test_collage_promotes_to_the_richest_kind(first, second, shape):
    out = Collage("side by side").apply(KINDS[first], Context([KINDS[first], KINDS[second]]))
    assert out.shape == shape
    if len(shape) == 3 and first == "gray":
        assert np.array_equal(out[:, :64, 1], KINDS["gray"])
    if shape[-1] == 4 and first != "rgba":
        assert np.all(out[:, :64, 3] == 255)


def test_collage_reads_every_input_and_needs_two():
    assert Collage("grid").images_needed == 2
    out = Collage("stacked").apply(gradient(), Context([gradient()] * 4))
    assert out.shape == (4 * 48, 64, 3)


@pytest.mark.parametrize("kwargs", [{"gap": 100000}, {"gap": -1}, {"columns": 0}, {"rows": 40}])
def test_collage_bad_parameters_are_refused(kwargs):
    with pytest.raises(InvalidRequestError) as caught:
        Collage("grid", **kwargs)
    assert caught.value.param == "prompt" and caught.value.code == "invalid_value"


# --- overlay / watermark ---------------------------------------------------------------

def test_overlay_at_zero_opacity_changes_nothing():
    base = gradient()
    out = Overlay(opacity=0).apply(base, Context([base, solid(RED, 10, 10)]))
    assert np.array_equal(out, base)


def test_overlay_size_is_a_share_of_the_base_width_and_sits_at_its_position():
    base = solid(WHITE, 100, 80)
    out = Overlay(position="bottom-right", size=30).apply(base, Context([base, solid(RED, 10, 5)]))
    red = np.argwhere(np.all(out == RED, axis=2))
    (top, left), (bottom, right) = red.min(0), red.max(0)
    assert (right - left + 1, bottom - top + 1) == (30, 15)
    margin = 2  # 2% of the shorter side
    assert (right, bottom) == (100 - margin - 1, 80 - margin - 1)


def test_overlay_leaves_the_input_untouched():
    base = gradient()
    before = base.copy()
    Overlay(position="top-left", size=50).apply(base, Context([base, solid(RED, 10, 10)]))
    assert np.array_equal(base, before)


def test_overlay_respects_the_overlay_alpha_and_opacity():
    base = solid(BLACK, 40, 40)
    half_clear = solid((255, 255, 255, 128), 10, 10)
    clear = solid((255, 255, 255, 0), 10, 10)
    center = (slice(18, 22), slice(18, 22))
    half = Overlay(size=50).apply(base, Context([base, half_clear]))[center]
    quarter = Overlay(size=50, opacity=50).apply(base, Context([base, half_clear]))[center]
    assert np.all(np.abs(half.astype(int) - 128) <= 2) and np.all(np.abs(quarter.astype(int) - 64) <= 2)
    assert np.array_equal(Overlay(size=50).apply(base, Context([base, clear])), base)


def test_watermark_defaults_to_half_opacity():
    base = solid(BLACK, 40, 40)
    out = Overlay(position="centre", size=50, opacity=50, kind="watermark").apply(base, Context([base, solid(WHITE, 8, 8)]))
    assert abs(int(out[20, 20, 0]) - 128) <= 1
    assert Overlay(kind="watermark").describe().startswith("watermark with the second image")


def test_overlay_on_a_transparent_base_makes_its_area_opaque():
    base = np.zeros((40, 40, 4), np.uint8)
    out = Overlay(size=50).apply(base, Context([base, solid(RED, 8, 8)]))
    assert out.shape == (40, 40, 4)
    assert np.array_equal(out[20, 20], [255, 0, 0, 255]) and out[0, 0, 3] == 0


@pytest.mark.parametrize("kind", KINDS)
def test_overlay_accepts_every_kind_of_base(kind):
    base = KINDS[kind]
    out = Overlay(position="top-left", size=25).apply(base, Context([base, solid(RED, 4, 4)]))
    assert out.shape[:2] == base.shape[:2]
    assert tuple(out[5, 5, :3]) == RED
    if kind == "rgba":
        assert out[5, 5, 3] == 255 and out[40, 60, 3] == 200


@pytest.mark.parametrize("kwargs", [{"opacity": 300}, {"opacity": -5}, {"size": 0}, {"size": 150},
                                    {"position": "upside"}])
def test_overlay_bad_parameters_are_refused(kwargs):
    with pytest.raises(InvalidRequestError) as caught:
        Overlay(**kwargs)
    assert caught.value.code == "invalid_value"


# --- blend ---------------------------------------------------------------------------

def test_blend_mixes_in_the_given_share():
    black, white = solid(BLACK, 32, 32), solid(WHITE, 32, 32)
    assert np.all(np.abs(Blend(1, 30).apply(black, Context([black, white])).astype(int) - 76) <= 1)
    assert np.array_equal(Blend(1, 0).apply(black, Context([black, white])), black)
    assert np.array_equal(Blend(1, 100).apply(black, Context([black, white])), white)


def test_blend_stretches_the_other_image_to_the_canvas_and_keeps_alpha():
    base = gradient(alpha=True)
    out = Blend(1, 50).apply(base, Context([base, solid(BLUE, 10, 30)]))
    assert out.shape == (48, 64, 4) and np.all(out[..., 3] == 200)
    assert out[..., 2].mean() > base[..., 2].mean() + 50


def test_blend_ignores_transparent_parts_of_the_other_image():
    base = gradient()
    clear = solid((255, 255, 255, 0), 64, 48)
    assert np.array_equal(Blend(1, 80).apply(base, Context([base, clear])), base)


def test_blend_of_gray_with_colour_becomes_rgb():
    out = Blend(1, 50).apply(gray(), Context([gray(), solid(RED, 64, 48)]))
    assert out.shape == (48, 64, 3) and out[..., 0].mean() > out[..., 2].mean()


def test_blend_out_of_range_is_refused():
    with pytest.raises(InvalidRequestError, match="300%"):
        Blend(1, 300)


# --- background ------------------------------------------------------------------------

def test_background_shows_through_the_transparent_part():
    canvas = transparent_left()
    out = ReplaceBackground(1).apply(canvas, Context([canvas, solid(BLUE, 64, 48)]))
    assert out.shape == (48, 64, 3)
    assert np.all(out[:, :32] == BLUE) and np.array_equal(out[:, 32:], canvas[:, 32:, :3])


def test_background_follows_the_mask_on_an_opaque_image():
    canvas, region = gradient(), np.zeros((48, 64), bool)
    region[10:20, 10:20] = True
    out = ReplaceBackground(1).apply(canvas, Context([canvas, solid(RED, 64, 48)], region=lambda: region))
    assert np.all(out[region] == RED) and np.array_equal(out[~region], canvas[~region])


def test_background_covers_the_canvas_by_centre_crop():
    bands = np.hstack([solid(RED, 32, 32), solid((0, 255, 0), 32, 32), solid(BLUE, 32, 32)])
    canvas = np.zeros((16, 16, 4), np.uint8)  # fully transparent
    out = ReplaceBackground(1).apply(canvas, Context([canvas, bands]))
    assert out.shape == (16, 16, 3) and np.all(out == (0, 255, 0))


def test_background_keeps_partial_alpha_over_a_transparent_backdrop():
    canvas = transparent_left()
    backdrop = solid((0, 0, 255, 0), 64, 48)
    out = ReplaceBackground(1).apply(canvas, Context([canvas, backdrop]))
    assert out.shape == (48, 64, 4) and np.all(out[:, :32, 3] == 0) and np.all(out[:, 32:, 3] == 255)


def test_background_needs_transparency_or_a_mask():
    canvas = gradient()
    with pytest.raises(InvalidRequestError) as caught:
        ReplaceBackground(1).apply(canvas, Context([canvas, solid(BLUE)]))
    assert caught.value.param == "prompt" and "remove the background" in caught.value.message


@pytest.mark.parametrize("kind", KINDS)
def test_background_with_mask_accepts_every_kind(kind):
    canvas, region = KINDS[kind], np.zeros((48, 64), bool)
    region[:, :10] = True
    out = ReplaceBackground(1).apply(canvas, Context([canvas, solid(RED, 64, 48)], region=lambda: region))
    assert out.shape[:2] == (48, 64) and np.all(out[:, :10, 0] == 255)


# --- histogram match / colour transfer -------------------------------------------------

def reference_image() -> np.ndarray:
    noise = np.random.default_rng(0).integers(0, 60, (48, 64, 3))
    return (noise + (150, 20, 80)).astype(np.uint8)


def test_histogram_match_to_itself_is_nearly_identity():
    image = gradient()
    out = HistogramMatch(1).apply(image, Context([image, image]))
    assert np.abs(out.astype(int) - image).max() <= 1


def test_histogram_match_takes_the_reference_distribution():
    image, reference = gradient(), reference_image()
    out = HistogramMatch(1).apply(image, Context([image, reference]))
    for channel in range(3):
        ours = np.percentile(out[..., channel], [10, 50, 90])
        theirs = np.percentile(reference[..., channel], [10, 50, 90])
        assert np.all(np.abs(ours - theirs) <= 4)


def test_histogram_match_keeps_kind_and_alpha():
    assert HistogramMatch(1).apply(gray(), Context([gray(), reference_image()])).shape == (48, 64)
    out = HistogramMatch(1).apply(gradient(alpha=True), Context([gradient(alpha=True), reference_image()]))
    assert out.shape == (48, 64, 4) and np.all(out[..., 3] == 200)


def test_histogram_match_ignores_transparent_reference_pixels():
    reference = np.dstack([reference_image(), np.full((48, 64), 255, np.uint8)])
    reference[:, :32] = (0, 0, 255, 0)  # hidden junk
    out = HistogramMatch(1).apply(gradient(), Context([gradient(), reference]))
    assert abs(out[..., 0].mean() - reference[:, 32:, 0].mean()) < 5


@pytest.mark.parametrize("kind", KINDS)
def test_color_transfer_accepts_every_kind(kind):
    out = ColorTransfer(1).apply(KINDS[kind], Context([KINDS[kind], reference_image()]))
    assert out.shape[:2] == (48, 64) and out[..., 0].mean() > out[..., 1].mean()
    if kind == "rgba":
        assert np.all(out[..., 3] == 200)


@pytest.mark.parametrize("op, needed", [(HistogramMatch(2), 3), (HistogramMatch(-1), 2), (Overlay(-1), 2),
                                        (Blend(3), 4), (ReplaceBackground(1), 2), (ColorTransfer(-1), 2)])
def test_images_needed_counts_the_highest_input_read(op, needed):
    assert op.images_needed == needed


def test_last_image_reads_the_final_input():
    base = solid(BLACK, 16, 16)
    out = Blend(-1, 100).apply(base, Context([base, solid(RED, 16, 16), solid(BLUE, 16, 16)]))
    assert np.all(out == BLUE)


def test_gray_collage_with_a_coloured_gap_becomes_rgb():
    out = Collage("side by side", gap=4, color=RED, color_name="red").apply(gray(), Context([gray(), gray()]))
    assert out.shape == (48, 132, 3) and np.all(out[:, 64:68] == RED)


def test_unknown_layout_is_refused():
    with pytest.raises(InvalidRequestError, match="diagonal"):
        Collage("diagonal")


# --- reading prompts ---------------------------------------------------------------------

@pytest.mark.parametrize("prompt, needed", [
    ("put the images side by side", 2),
    ("blend with the last image", 2),
    ("overlay image 3 in the top left corner", 3),
    ("use picture 4 as the background", 4),
    ("histogram-match it to image 2", 2),
])
def test_prompts_ask_for_the_images_they_read(prompt, needed):
    [operation] = read_instructions(prompt)
    assert operation.images_needed == needed


@pytest.mark.parametrize("prompt, named", [
    ("overlay image 2 at 300% opacity", "300%"),
    ("put the second image in the corner at 0% size", "0%"),
    ("blend them 0/0", "0/0"),
    ("arrange them in a 20x2 grid", "20 columns"),
    ("stack them with a 100000px gap", "100000px"),
])
def test_impossible_amounts_in_prompts_are_refused(prompt, named):
    with pytest.raises(InvalidRequestError) as caught:
        read_instructions(prompt)
    assert named in caught.value.message and caught.value.code == "invalid_value"


def test_huge_numbers_in_prompts_are_refused_cleanly():
    with pytest.raises(InvalidRequestError, match="whole numbers"):
        read_instructions("make a " + "1" * 400 + "x2 grid")
    with pytest.raises(InvalidRequestError, match="gap"):
        read_instructions("stack them with a " + "9" * 400 + "px gap")
