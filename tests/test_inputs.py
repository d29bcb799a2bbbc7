"""Input checks happen from the header, before (and without) decoding pixels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from retouch.errors import InvalidImageError
from retouch.inputs import InputImage, InputLimits, Slot, inspect_header
from tests.images import gradient, png


def _png_with_garbage_pixels(width: int, height: int) -> bytes:
    """A valid PNG header followed by pixel data that cannot be decoded."""
    good = png(gradient(width, height))
    idat = good.index(b"IDAT")
    return good[: idat + 4] + bytes(len(good) - idat - 4)


def test_header_check_does_not_decode_pixels():
    data = _png_with_garbage_pixels(64, 48)
    fmt, size = inspect_header(io.BytesIO(data), Slot("image"), InputLimits())
    assert (fmt, size) == ("PNG", (64, 48))
    with pytest.raises(InvalidImageError) as caught:
        InputImage(io.BytesIO(data), fmt, size, Slot("image", 2)).pixels()
    assert caught.value.param == "image" and "image[2]" in caught.value.message


def test_png_orientation_from_exif_chunk_swaps_size():
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(gradient(40, 20)).save(buffer, "PNG", exif=exif)
    fmt, size = inspect_header(buffer, Slot("image"), InputLimits())
    assert size == (20, 40)
    pixels = InputImage(buffer, fmt, size, Slot("image")).pixels()
    assert pixels.shape[:2] == (40, 20)


def test_palette_with_transparency_decodes_as_rgba():
    image = Image.fromarray(gradient()).convert("P")
    image.info["transparency"] = 0
    buffer = io.BytesIO()
    image.save(buffer, "PNG", transparency=0)
    pixels = InputImage(buffer, "PNG", (64, 48), Slot("image")).pixels()
    assert pixels.shape == (48, 64, 4)


def test_first_gif_frame_is_used():
    frames = [Image.fromarray(np.full((8, 8, 3), c, np.uint8)) for c in (10, 250)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    pixels = InputImage(buffer, "GIF", (8, 8), Slot("image")).pixels()
    assert pixels[0, 0, 0] < 50
