"""Golden images: one representative edit per operation family, compared with a stored
result by similarity (PSNR), never by exact bytes.

Regenerate after an intended change of look: RETOUCH_UPDATE_GOLDEN=1 pytest tests/engine/test_golden.py
(then look at the images in tests/engine/golden/ before committing them).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from retouch.engine import pipeline
from retouch.engine.generation import read_generation
from retouch.engine.instructions import read_instructions
from retouch.inputs import InputImage, InputLimits, Slot, inspect_header
from tests.images import encode, photo, solid

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("RETOUCH_UPDATE_GOLDEN") == "1"
MIN_PSNR = 38.0  # dB: visually identical; an off-by-one rounding change stays well above


def _logo() -> np.ndarray:
    logo = solid((255, 255, 255, 0), 32, 32)
    logo[8:24, 8:24] = (200, 20, 20, 255)
    return logo


def _subject_on_white() -> np.ndarray:
    image = solid((255, 255, 255), 96, 64)
    image[16:48, 30:66] = photo(36, 32)
    return image


def _mask() -> np.ndarray:
    mask = solid((0, 0, 0, 255), 96, 64)
    mask[20:44, 30:60, 3] = 0  # transparent = edit here
    return mask


CASES = {
    "color_sepia": ("sepia", [photo()], None),
    "color_warmer_contrast": ("make it warmer and increase the contrast by 30%", [photo()], None),
    "color_hue": ("shift the hue by 90 degrees", [photo()], None),
    "color_posterize": ("posterize to 4 levels", [photo()], None),
    "geometry_rotate": ("rotate 30 degrees", [photo()], None),
    "geometry_crop_border": ("crop to 1:1 and add a 4px red border", [photo()], None),
    "geometry_corners": ("round the corners", [photo()], None),
    "filters_blur": ("blur by 2 pixels", [photo()], None),
    "filters_sharpen": ("sharpen", [photo()], None),
    "filters_edges": ("detect edges", [photo()], None),
    "filters_emboss": ("emboss", [photo()], None),
    "filters_vignette": ("add a strong vignette", [photo()], None),
    "filters_cartoon": ("make it look like a cartoon", [photo()], None),
    "filters_pencil": ("pencil sketch", [photo()], None),
    "filters_watercolour": ("watercolour painting", [photo()], None),
    "filters_oil": ("oil painting", [photo()], None),
    "filters_detail": ("enhance details", [photo()], None),
    "style_restyle": ("give the first image the same style as the second image",
                      [photo(), photo(seed=3)[::-1, :, ::-1].copy()], None),
    "style_histogram": ("match the histogram of the second image", [photo(), photo(seed=3)[:, ::-1].copy()], None),
    "compose_side_by_side": ("put the images side by side", [photo(), photo(48, 64, seed=2)], None),
    "compose_grid": ("arrange them in a 2x2 grid", [photo(), photo(seed=2), photo(seed=3)], None),
    "compose_watermark": ("watermark it with the logo in image 2", [photo(), _logo()], None),
    "compose_blend": ("blend the two images 50/50", [photo(), photo(seed=5)[::-1].copy()], None),
    "mask_inpaint": ("inpaint the masked area", [photo()], _mask()),
    "mask_pixelate": ("pixelate the masked area", [photo()], _mask()),
    "mask_ordinary_edit": ("invert", [photo()], _mask()),
    "background_remove": ("remove the background", [_subject_on_white()], None),
    "text_caption": ("add the text 'SALE' at the bottom in red", [photo()], None),
}


def _input(pixels: np.ndarray, index: int) -> InputImage:
    data = io.BytesIO(encode(pixels))
    fmt, size = inspect_header(data, Slot("image", index), InputLimits())
    return InputImage(data, fmt, size, Slot("image", index))


def _render(prompt: str, images: list[np.ndarray], mask: np.ndarray | None) -> np.ndarray:
    operations = read_instructions(prompt) if images else read_generation(prompt, None)
    inputs = [_input(p, i) for i, p in enumerate(images)]
    outcome = pipeline.run(operations, inputs, mask=_input(mask, 0) if mask is not None else None)
    return outcome.pixels


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_golden_image(name):
    prompt, images, mask = CASES[name]
    result = _render(prompt, images, mask)
    path = GOLDEN / f"{name}.png"
    if UPDATE:
        Image.fromarray(result).save(path)
    assert path.exists(), f"no golden image {path.name}: run with RETOUCH_UPDATE_GOLDEN=1 once"
    with Image.open(path) as img:
        golden = np.asarray(img)
    assert result.shape == golden.shape
    assert _psnr(result, golden) >= MIN_PSNR, f"{name}: {prompt!r} no longer looks like its golden image"


def test_golden_generation():
    result = _render("a 64x32 red to blue gradient with the text 'Hi'", [], None)
    path = GOLDEN / "generation_gradient_text.png"
    if UPDATE:
        Image.fromarray(result).save(path)
    with Image.open(path) as img:
        assert _psnr(result, np.asarray(img)) >= MIN_PSNR
