"""Pixel properties of the geometry operations: crop, resize to a box, pad and border,
rounded corners, and the limits they refuse."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from retouch.engine.instructions import read_instructions
from retouch.engine.ops import NO_CONTEXT
from retouch.engine.ops.crop import CropEdges, CropToAspect, CropToSize
from retouch.engine.ops.dimensions import Length
from retouch.engine.ops.frame import Border, Fill, PadTo, RoundCorners
from retouch.engine.ops.geometry import Resize, Rotate
from retouch.errors import InvalidRequestError
from tests.images import gradient, solid

RED = Fill((255, 0, 0), "red")
TRANSPARENT = Fill(None, "transparent")
SHAPES = {"gray": lambda: gradient()[..., 0].copy(), "rgb": gradient, "rgba": lambda: gradient(alpha=True)}
GEOMETRY_TABLE = Path(__file__).parent / "phrasings" / "geometry.yaml"


def apply(op, image):
    return op.apply(image, NO_CONTEXT)


# --- crop ---------------------------------------------------------------------------------

def test_crop_to_aspect_keeps_the_centred_region():
    image = gradient(64, 48)
    assert np.array_equal(apply(CropToAspect((16, 9)), image), image[6:42])
    assert np.array_equal(apply(CropToAspect((1, 1)), image), image[:, 8:56])
    assert apply(CropToAspect((1, 2)), image).shape[:2] == (48, 24)


def test_crop_to_size_is_exact_and_centred():
    image = gradient(64, 48)
    out = apply(CropToSize(30, 20), image)
    assert out.shape == (20, 30, 3)
    assert np.array_equal(out, image[14:34, 17:47])


def test_crop_larger_than_the_image_is_refused():
    with pytest.raises(InvalidRequestError) as caught:
        apply(CropToSize(65, 10), gradient(64, 48))
    assert caught.value.param == "prompt" and "64x48" in caught.value.message


def test_crop_edges_in_pixels_and_percent():
    image = gradient(64, 48)
    assert np.array_equal(apply(CropEdges(Length(10)), image), image[10:38, 10:54])
    assert np.array_equal(apply(CropEdges(Length(20, "%"), ("top",)), image), image[10:])
    assert np.array_equal(apply(CropEdges(Length(5, "%"), ("left", "right")), image), image[:, 3:61])


def test_crop_edges_that_leave_nothing_are_refused():
    with pytest.raises(InvalidRequestError):
        apply(CropEdges(Length(24)), gradient(64, 48))
    with pytest.raises(InvalidRequestError):
        CropEdges(Length(50, "%"))  # 50% from both left and right is the whole width


@pytest.mark.parametrize("shape", SHAPES)
def test_crops_keep_channels_and_alpha(shape):
    image = SHAPES[shape]()
    for op in (CropToAspect((1, 1)), CropToSize(8, 8), CropEdges(Length(3))):
        out = apply(op, image)
        assert out.ndim == image.ndim and out.shape[2:] == image.shape[2:]
        if shape == "rgba":
            assert np.all(out[..., 3] == 200)


# --- resize to a box ----------------------------------------------------------------------

def test_resize_fit_keeps_aspect_inside_the_box():
    image = gradient(64, 48)
    assert apply(Resize(width=32, height=32, mode="fit"), image).shape[:2] == (24, 32)
    assert apply(Resize(width=200, height=96, mode="fit"), image).shape[:2] == (96, 128)


def test_resize_fill_covers_then_crops_the_centre():
    image = gradient(64, 48)
    out = apply(Resize(width=30, height=30, mode="fill"), image)
    assert out.shape == (30, 30, 3)
    covered = cv2.resize(image, (40, 30), interpolation=cv2.INTER_AREA)[:, 5:35]
    assert np.abs(out.astype(int) - covered).mean() < 4


def test_resize_beyond_the_output_limit_is_refused():
    with pytest.raises(InvalidRequestError):
        apply(Resize(scale=200), gradient(64, 48))  # 12800 px wide
    with pytest.raises(InvalidRequestError):
        Resize(width=9000)
    with pytest.raises(InvalidRequestError):
        Resize(scale=0)


def test_rotation_that_would_outgrow_the_limit_is_refused():
    with pytest.raises(InvalidRequestError):
        apply(Rotate(45), np.zeros((1, 12000), np.uint8))


# --- pad, border --------------------------------------------------------------------------

def test_border_surrounds_the_untouched_original():
    image = gradient(64, 48)
    out = apply(Border(Length(10), RED), image)
    assert out.shape == (68, 84, 3)
    assert np.array_equal(out[10:58, 10:74], image)
    ring = np.ones(out.shape[:2], bool)
    ring[10:58, 10:74] = False
    assert np.all(out[ring] == (255, 0, 0))


def test_border_percentage_is_of_the_shorter_side():
    assert apply(Border(Length(25, "%")), gradient(64, 48)).shape[:2] == (48 + 24, 64 + 24)


def test_transparent_border_adds_alpha():
    out = apply(Border(Length(4), TRANSPARENT), gradient(64, 48))
    assert out.shape == (56, 72, 4)
    assert np.all(out[:4, :, 3] == 0) and np.all(out[4:52, 4:68, 3] == 255)


def test_border_colour_decides_gray_or_rgb():
    gray = SHAPES["gray"]()
    assert apply(Border(), gray).ndim == 2  # white is a gray level
    out = apply(Border(color=RED), gray)
    assert out.shape[2] == 3 and tuple(out[0, 0]) == (255, 0, 0)


def test_coloured_border_on_rgba_is_opaque_and_keeps_alpha():
    out = apply(Border(Length(2), RED), gradient(alpha=True))
    assert tuple(out[0, 0]) == (255, 0, 0, 255) and np.all(out[2:-2, 2:-2, 3] == 200)


def test_pad_to_size_centres_the_image():
    image = gradient(64, 48)
    out = apply(PadTo(size=(100, 80), color=RED), image)
    assert out.shape == (80, 100, 3)
    assert np.array_equal(out[16:64, 18:82], image)
    assert tuple(out[0, 0]) == (255, 0, 0) and tuple(out[-1, -1]) == (255, 0, 0)


def test_pad_to_ratio_grows_only_the_short_side():
    assert apply(PadTo(ratio=(1, 1)), gradient(64, 48)).shape[:2] == (64, 64)
    assert apply(PadTo(ratio=(16, 9)), gradient(64, 48)).shape[:2] == (48, 85)


def test_pad_smaller_than_the_image_is_refused():
    with pytest.raises(InvalidRequestError):
        apply(PadTo(size=(32, 32)), gradient(64, 48))


def test_border_beyond_the_output_limit_is_refused():
    with pytest.raises(InvalidRequestError):
        apply(Border(Length(4096)), gradient(64, 48))
    with pytest.raises(InvalidRequestError):
        Border(Length(0))


# --- rounded corners ----------------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
def test_rounded_corners_are_transparent_and_antialiased(shape):
    image = SHAPES[shape]()
    out = apply(RoundCorners(Length(12)), image)
    assert out.shape == (48, 64, 4)
    alpha = out[..., 3]
    inside = 200 if shape == "rgba" else 255
    assert alpha[0, 0] == alpha[0, -1] == alpha[-1, 0] == alpha[-1, -1] == 0
    assert alpha[24, 32] == inside and alpha[0, 32] == inside and alpha[24, 0] == inside
    assert np.any((alpha[:12, :12] > 0) & (alpha[:12, :12] < inside))  # a soft edge
    assert np.array_equal(alpha, alpha[::-1, ::-1])
    assert np.array_equal(out[..., :3], cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if shape == "gray" else image[..., :3])


def test_rounded_corner_area_matches_the_circle():
    out = apply(RoundCorners(Length(20)), solid((0, 0, 255), 40, 40))
    covered = out[..., 3].sum() / 255
    assert abs(covered - np.pi * 20 ** 2) < 5


def test_corner_radius_larger_than_half_the_image_is_refused():
    with pytest.raises(InvalidRequestError):
        apply(RoundCorners(Length(30)), gradient(64, 48))
    with pytest.raises(InvalidRequestError):
        RoundCorners(Length(60, "%"))


# --- all operations -----------------------------------------------------------------------

ALL = [CropToAspect((16, 9)), CropToSize(20, 20), CropEdges(Length(10, "%")), Resize(width=20, height=20, mode="fit"),
       Resize(width=20, height=30, mode="fill"), Border(), PadTo(ratio=(1, 1), color=TRANSPARENT),
       RoundCorners(), Rotate(30)]


@pytest.mark.parametrize("op", ALL, ids=lambda op: op.describe())
def test_inputs_are_never_modified(op):
    for make in SHAPES.values():
        image = make()
        before = image.copy()
        out = apply(op, image)
        assert out.dtype == np.uint8
        assert np.array_equal(image, before)


# --- phrases ------------------------------------------------------------------------------

@pytest.mark.parametrize("prompt", ["crop to 0:5", "add a 100000px border", "resize to 0x100",
                                    "round corners 80%", "crop 150% from the top", "make it 100% smaller",
                                    "pad to 99999x5 with red", "make it 1000000 pixels wide"])
def test_impossible_amounts_are_refused_with_prompt_param(prompt):
    with pytest.raises(InvalidRequestError) as caught:
        read_instructions(prompt)
    assert caught.value.param == "prompt" and caught.value.code == "invalid_value"
    assert caught.value.status == 400


def test_descriptions_read_back_as_themselves():
    """Every ``describe()`` in the geometry table is itself a prompt for the same edit."""
    table = yaml.safe_load(GEOMETRY_TABLE.read_text())
    descriptions = {text for expected in table.values() for text in expected}
    geometry = {text for text in descriptions if text != "grayscale"}
    for text in geometry:
        assert [op.describe() for op in read_instructions(text)] == [text]
