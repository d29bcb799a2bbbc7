"""Deterministic test images, built in memory."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def gradient(width: int = 64, height: int = 48, alpha: bool = False) -> np.ndarray:
    """An RGB(A) image whose every pixel differs, so geometry is checkable exactly."""
    y, x = np.mgrid[0:height, 0:width]
    red = (x * 255 // max(width - 1, 1)).astype(np.uint8)
    green = (y * 255 // max(height - 1, 1)).astype(np.uint8)
    blue = ((x + y) * 7 % 256).astype(np.uint8)
    channels = [red, green, blue] + ([np.full_like(red, 200)] if alpha else [])
    return np.dstack(channels)


def solid(color: tuple[int, ...], width: int = 32, height: int = 32) -> np.ndarray:
    return np.full((height, width, len(color)), color, dtype=np.uint8)


def encode(pixels: np.ndarray, fmt: str = "PNG", **save) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt, **save)
    return buffer.getvalue()


def png(pixels: np.ndarray | None = None) -> bytes:
    return encode(gradient() if pixels is None else pixels)


def decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGBA" if "A" in img.getbands() else "RGB"))
