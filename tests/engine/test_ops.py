"""Pixel properties of the operations the engine has today."""

from __future__ import annotations

import numpy as np

from retouch.engine.ops import NO_CONTEXT, Context
from retouch.engine.ops.color import Grayscale
from retouch.engine.ops.geometry import Flip, Resize, Rotate, fit_inside
from retouch.engine.ops.style import ColorTransfer
from tests.images import gradient, solid


def test_grayscale_is_single_luma_channel():
    out = Grayscale().apply(gradient(), NO_CONTEXT)
    assert out.ndim == 2 and out.shape == (48, 64)
    pixel = gradient()[10, 20].astype(float)
    assert abs(out[10, 20] - (0.299 * pixel[0] + 0.587 * pixel[1] + 0.114 * pixel[2])) <= 1


def test_grayscale_keeps_alpha_with_equal_channels():
    out = Grayscale().apply(gradient(alpha=True), NO_CONTEXT)
    assert out.shape == (48, 64, 4)
    assert np.array_equal(out[..., 0], out[..., 2]) and np.all(out[..., 3] == 200)


def test_rotate_quarter_turns_are_exact():
    image = gradient()
    assert np.array_equal(Rotate(90).apply(image, NO_CONTEXT), np.rot90(image, k=-1))
    assert np.array_equal(Rotate(-90).apply(image, NO_CONTEXT), np.rot90(image, k=1))
    assert np.array_equal(Rotate(180).apply(image, NO_CONTEXT), image[::-1, ::-1])
    assert np.array_equal(Rotate(360).apply(image, NO_CONTEXT), image)


def test_rotate_any_angle_grows_canvas_with_transparent_corners():
    out = Rotate(45).apply(solid((255, 0, 0), 100, 100), NO_CONTEXT)
    assert out.shape[2] == 4 and out.shape[0] >= 140 and out.shape[1] >= 140
    assert out[0, 0, 3] == 0 and out[70, 70, 3] == 255


def test_flip_is_pixel_exact():
    image = gradient()
    assert np.array_equal(Flip("horizontal").apply(image, NO_CONTEXT), image[:, ::-1])
    assert np.array_equal(Flip("vertical").apply(image, NO_CONTEXT), image[::-1])


def test_resize_variants():
    image = gradient(64, 48)
    assert Resize(width=32, height=10).apply(image, NO_CONTEXT).shape[:2] == (10, 32)
    assert Resize(width=32).apply(image, NO_CONTEXT).shape[:2] == (24, 32)
    assert Resize(height=96).apply(image, NO_CONTEXT).shape[:2] == (96, 128)
    assert Resize(scale=0.5).apply(image, NO_CONTEXT).shape[:2] == (24, 32)
    assert fit_inside(image, 16, 16).shape[:2] == (12, 16)


def test_color_transfer_moves_mean_toward_reference():
    target = gradient(64, 64)
    reference = solid((20, 40, 220), 64, 64) + np.random.default_rng(0).integers(0, 20, (64, 64, 3), dtype=np.uint8)
    out = ColorTransfer(1).apply(target, Context([target, reference]))
    before = np.abs(target.reshape(-1, 3).mean(0) - reference.reshape(-1, 3).mean(0)).sum()
    after = np.abs(out.reshape(-1, 3).mean(0) - reference.reshape(-1, 3).mean(0)).sum()
    assert after < before / 3
    assert out.shape == target.shape


def test_color_transfer_keeps_alpha_and_reads_last_image():
    target = gradient(alpha=True)
    out = ColorTransfer(-1).apply(target, Context([target, solid((0, 0, 0)), solid((0, 200, 0), 64, 48)]))
    assert out.shape[2] == 4 and np.all(out[..., 3] == 200)
    assert out[..., 1].mean() > out[..., 0].mean()
