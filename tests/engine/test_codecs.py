"""Tests for retouch.engine.codecs: round trips through Pillow's decoders."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image

from retouch.engine.codecs import CONTENT_TYPES, OUTPUT_FORMATS, encode, flatten_alpha

RED = (255, 0, 0)


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def random_pixels(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def photo_like(size=128) -> np.ndarray:
    """Smooth gradients with a little noise, so JPEG quality matters."""
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([200 * x, 200 * y, 100 + 80 * np.sin(6 * x * y)], axis=-1)
    noise = np.random.default_rng(1).normal(0, 4, base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def png_chunk_types(data: bytes) -> list[bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    types, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        types.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return types


def jpeg_markers(data: bytes) -> list[int]:
    """Marker bytes of the segments before the entropy-coded scan."""
    assert data[:2] == b"\xff\xd8"
    markers, pos = [], 2
    while pos < len(data):
        marker = data[pos + 1]
        markers.append(marker)
        if marker == 0xDA:  # start of scan: the rest is image data
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        pos += 2 + length
    return markers


def webp_chunk_types(data: bytes) -> list[bytes]:
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    types, pos = [], 12
    while pos < len(data):
        tag = data[pos : pos + 4]
        (length,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        types.append(tag)
        pos += 8 + length + (length & 1)
    return types


def test_public_constants():
    assert OUTPUT_FORMATS == ("png", "jpeg", "webp")
    assert CONTENT_TYPES == {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


@pytest.mark.parametrize(
    ("shape", "mode"), [((37, 53), "L"), ((37, 53, 3), "RGB"), ((37, 53, 4), "RGBA")]
)
def test_png_is_lossless(shape, mode):
    pixels = random_pixels(shape)
    image = decode(encode(pixels, "png"))
    assert image.format == "PNG"
    assert image.mode == mode
    np.testing.assert_array_equal(np.asarray(image), pixels)


@pytest.mark.parametrize("channels", [3, 4])
def test_png_of_non_contiguous_view_is_lossless(channels):
    base = random_pixels((40, 60, channels))
    for view in (base[:, ::-1], base[::2, 1::3], base.transpose(1, 0, 2)):
        assert not view.flags.c_contiguous
        np.testing.assert_array_equal(np.asarray(decode(encode(view, "png"))), view)


def test_png_of_non_contiguous_grey_view_is_lossless():
    view = random_pixels((40, 60))[:, ::-1]
    np.testing.assert_array_equal(np.asarray(decode(encode(view, "png"))), view)


@pytest.mark.parametrize("fmt", OUTPUT_FORMATS)
@pytest.mark.parametrize("channels", [3, 4])
def test_channel_order_is_rgb(fmt, channels):
    pixels = np.zeros((32, 32, channels), np.uint8)
    pixels[..., :3] = RED
    if channels == 4:
        pixels[..., 3] = 255
    decoded = np.asarray(decode(encode(pixels, fmt)).convert("RGB")).astype(int)
    assert np.abs(decoded - RED).max() <= 4, decoded[0, 0]


@pytest.mark.parametrize("fmt", OUTPUT_FORMATS)
def test_format_of_output_matches_name(fmt):
    image = decode(encode(random_pixels((16, 16, 3)), fmt))
    assert Image.MIME[image.format] == CONTENT_TYPES[fmt]


def test_webp_keeps_alpha():
    pixels = np.zeros((32, 32, 4), np.uint8)
    pixels[..., :3] = RED
    pixels[:, :16, 3] = 255
    image = decode(encode(pixels, "webp", quality=100))
    assert image.mode == "RGBA"
    alpha = np.asarray(image)[..., 3].astype(int)
    assert alpha[:, :16].min() >= 250 and alpha[:, 16:].max() <= 5


def test_jpeg_of_rgba_is_flattened_onto_white():
    pixels = np.zeros((32, 48, 4), np.uint8)
    pixels[..., :3] = RED
    pixels[:, :16, 3] = 0  # transparent -> white
    pixels[:, 16:32, 3] = 128  # half red over white -> pink
    pixels[:, 32:, 3] = 255  # opaque red stays red
    image = decode(encode(pixels, "jpeg", quality=95))
    assert image.mode == "RGB"
    rgb = np.asarray(image).astype(int)
    centre = rgb[16]
    assert np.abs(centre[4] - (255, 255, 255)).max() <= 6
    assert np.abs(centre[24] - (255, 127, 127)).max() <= 8
    assert np.abs(centre[44] - RED).max() <= 6


def test_jpeg_of_grey_stays_grey():
    pixels = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (16, 1))
    image = decode(encode(pixels, "jpeg", quality=95))
    assert image.mode == "L"
    assert np.abs(np.asarray(image).astype(int) - pixels).max() <= 4


def test_quality_changes_jpeg_size():
    pixels = photo_like()
    low, default, high = (len(encode(pixels, "jpeg", quality=q)) for q in (20, None, 98))
    assert low < default < high
    assert default == len(encode(pixels, "jpeg", quality=90))


def test_quality_changes_webp_size():
    pixels = photo_like()
    assert len(encode(pixels, "webp", quality=20)) < len(encode(pixels, "webp", quality=95))


def test_png_ignores_quality():
    pixels = random_pixels((16, 16, 3))
    assert encode(pixels, "png", quality=5) == encode(pixels, "png")


def test_png_carries_no_metadata():
    assert png_chunk_types(encode(random_pixels((16, 16, 4)), "png")) == [
        b"IHDR",
        b"IDAT",
        b"IEND",
    ]


def test_jpeg_carries_no_metadata():
    data = encode(random_pixels((16, 16, 3)), "jpeg")
    markers = jpeg_markers(data)
    assert 0xE1 not in markers  # APP1: EXIF / XMP
    assert 0xFE not in markers  # COM: text comment
    assert not set(markers) & set(range(0xE2, 0xF0))  # APP2..APP15: ICC, vendor blobs
    image = decode(data)
    assert len(image.getexif()) == 0
    assert "exif" not in image.info and "comment" not in image.info


def test_webp_carries_no_metadata():
    for channels in (3, 4):
        types = webp_chunk_types(encode(random_pixels((16, 16, channels)), "webp"))
        assert not {b"EXIF", b"XMP ", b"ICCP"} & set(types), types
        assert len(decode(encode(random_pixels((16, 16, channels)), "webp")).getexif()) == 0


@pytest.mark.parametrize("fmt", ["PNG", "jpg", "gif", "", "png "])
def test_bad_format_raises_value_error(fmt):
    with pytest.raises(ValueError, match="format"):
        encode(random_pixels((8, 8, 3)), fmt)


@pytest.mark.parametrize("quality", [-1, 101, 50.0, "90", True])
def test_bad_quality_raises_value_error(quality):
    with pytest.raises(ValueError, match="quality"):
        encode(random_pixels((8, 8, 3)), "jpeg", quality=quality)


@pytest.mark.parametrize(
    "pixels",
    [
        np.zeros((8, 8, 3), np.float32),
        np.zeros((8, 8, 2), np.uint8),
        np.zeros((8, 8, 3, 1), np.uint8),
        np.zeros((0, 8, 3), np.uint8),
        [[0, 0], [0, 0]],
    ],
)
def test_bad_pixels_raise_value_error(pixels):
    with pytest.raises(ValueError, match="pixels"):
        encode(pixels, "png")


def test_flatten_alpha_composites_over_background():
    pixels = np.array([[[200, 100, 50, 255], [200, 100, 50, 0], [255, 0, 0, 128]]], np.uint8)
    np.testing.assert_array_equal(
        flatten_alpha(pixels), [[[200, 100, 50], [255, 255, 255], [255, 127, 127]]]
    )
    np.testing.assert_array_equal(
        flatten_alpha(pixels, background=(0, 0, 0)), [[[200, 100, 50], [0, 0, 0], [128, 0, 0]]]
    )
    assert flatten_alpha(pixels).dtype == np.uint8


@pytest.mark.parametrize("shape", [(4, 5), (4, 5, 3)])
def test_flatten_alpha_leaves_other_shapes_alone(shape):
    pixels = random_pixels(shape)
    assert flatten_alpha(pixels) is pixels
