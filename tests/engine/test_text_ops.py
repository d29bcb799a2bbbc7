"""Pixel properties of text drawing (engine/ops/text.py) and how quoted text is read."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from retouch.engine.instructions import read_instructions
from retouch.engine.ops import NO_CONTEXT
from retouch.engine.ops.text import AddText, missing_glyphs
from retouch.engine.phrases import QUOTED, normalise, quoted_text
from retouch.errors import InvalidRequestError, UnsupportedInstructionError
from tests.images import solid

GRAY = (128, 128, 128)


def changed(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Bool HxW: where any channel differs."""
    diff = np.abs(after.astype(int) - before.astype(int))
    return diff if diff.ndim == 2 else diff.max(axis=2) > 0


def extent(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the True pixels, inclusive."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return rows[0], rows[-1], cols[0], cols[-1]


def canvas(width: int = 160, height: int = 120) -> np.ndarray:
    return solid(GRAY, width, height)


@pytest.mark.parametrize("position, rows, cols", [
    ("bottom", (60, 120), (20, 140)),
    ("top", (0, 60), (20, 140)),
    ("top-left", (0, 60), (0, 80)),
    ("bottom-right", (60, 120), (80, 160)),
    ("center", (30, 90), (20, 140)),
])
def test_text_lands_where_asked(position, rows, cols):
    image = canvas()
    out = AddText("Hi", position=position, size=15).apply(image, NO_CONTEXT)
    top, bottom, left, right = extent(changed(image, out))
    assert rows[0] <= top and bottom < rows[1] and cols[0] <= left and right < cols[1]


def test_text_has_its_colour_and_a_contrasting_outline():
    image = canvas()
    out = AddText("SALE", color=(255, 0, 0), color_name="red", size=20).apply(image, NO_CONTEXT)
    red = (out[..., 0] > 200) & (out[..., 1] < 60)
    dark = out.max(axis=2) < 70  # the outline of light text is dark
    assert red.sum() > 50 and dark.sum() > 20


def test_percent_size_follows_image_height_and_px_is_absolute():
    image = canvas()
    def height(op):
        top, bottom, _, _ = extent(changed(image, op.apply(image, NO_CONTEXT)))
        return bottom - top
    assert height(AddText("Hg", size=25)) > 1.8 * height(AddText("Hg", size=12))
    assert abs(height(AddText("Hg", size=30, unit="px")) - height(AddText("Hg", size=25))) <= 4


def test_watermark_opacity_blends_instead_of_covering():
    image = canvas()
    full = AddText("ACME", size=20).apply(image, NO_CONTEXT)
    faint = AddText("ACME", size=20, opacity=30, watermark=True).apply(image, NO_CONTEXT)
    assert full.max() == 255
    assert 128 < faint.max() <= 128 + 0.3 * 127 + 2


def test_long_text_is_scaled_to_fit_the_width():
    image = canvas()
    out = AddText("A rather long caption that cannot fit", size=30).apply(image, NO_CONTEXT)
    _, _, left, right = extent(changed(image, out))
    assert left > 0 and right < 159


def test_input_is_not_modified():
    image = canvas()
    before = image.copy()
    AddText("x").apply(image, NO_CONTEXT)
    assert np.array_equal(image, before)


def test_gray_canvas_stays_gray_for_white_text_and_becomes_rgb_for_red():
    gray = cv2.cvtColor(canvas(), cv2.COLOR_RGB2GRAY)
    white = AddText("Hi", size=20).apply(gray, NO_CONTEXT)
    red = AddText("Hi", color=(255, 0, 0), color_name="red", size=20).apply(gray, NO_CONTEXT)
    assert white.ndim == 2 and white.max() == 255
    assert red.shape == (120, 160, 3) and (red[..., 0].astype(int) - red[..., 1]).max() > 100


def test_rgba_text_is_opaque_on_a_transparent_canvas_and_alpha_kept_elsewhere():
    image = np.zeros((120, 160, 4), np.uint8)
    out = AddText("Hi", size=20).apply(image, NO_CONTEXT)
    text = out[..., 3] > 0
    assert out.shape == (120, 160, 4) and out[..., 3].max() == 255
    assert np.all(out[~text] == 0)
    assert np.all(out[out[..., 3] == 255][:, :3] == 255)  # glyph cores are the text colour, not darkened


@pytest.mark.parametrize("make, named", [
    (lambda: AddText("x" * 501), "501 characters"),
    (lambda: AddText("   "), "3 characters"),
    (lambda: AddText("x", size=0, unit="px"), "0px"),
    (lambda: AddText("x", size=300), "300%"),
    (lambda: AddText("x", opacity=300), "300%"),
])
def test_impossible_parameters_are_rejected(make, named):
    with pytest.raises(InvalidRequestError) as caught:
        make()
    assert caught.value.param == "prompt" and named in caught.value.message


def test_characters_the_font_lacks_are_rejected_not_drawn_as_boxes():
    assert missing_glyphs("Été — ok") == ["É", "é", "—"]
    assert missing_glyphs("© 2026 ACME, 50% off! “quoted”") == []
    with pytest.raises(InvalidRequestError) as caught:
        AddText("Café").apply(canvas(), NO_CONTEXT)
    assert "'é'" in caught.value.message


def test_describe_lists_every_parameter():
    assert AddText("SALE", color=(255, 0, 0), color_name="red").describe() == 'text "SALE" bottom, red, 8% height'
    assert (AddText("© ACME", position="bottom-right", size=48, unit="px", opacity=50, watermark=True).describe()
            == 'watermark "© ACME" bottom-right, white, 48px, 50% opacity')


def test_quoted_words_are_never_instructions_and_keep_their_case():
    operations = read_instructions("Add the text 'Rotate ME 90 degrees' and flip it")
    assert [type(op).__name__ for op in operations] == ["AddText", "Flip"]
    assert operations[0].text == "Rotate ME 90 degrees"


def test_quoted_texts_keep_case_spacing_and_their_own_quote_kind():
    prompt = "write 'Hello  World' at the top, then add “Ça va?” and \"He said 'hi'\""
    quoted = [quoted_text(m) for m in QUOTED.finditer(prompt)]
    assert quoted == ["Hello  World", "Ça va?", "He said 'hi'"]
    assert '"Hello  World"' in normalise(prompt) and "Ça va?" in normalise(prompt)


def test_long_runs_of_text_words_are_read_quickly():
    # Would never finish if the text pattern backtracked over every way to read the words.
    with pytest.raises(UnsupportedInstructionError):
        read_instructions("add " + "in red text " * 300 + "x")
