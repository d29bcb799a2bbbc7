"""Deterministic test images, built in memory."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw


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


def photo(width: int = 96, height: int = 64, seed: int = 7) -> np.ndarray:
    """A small photo-like RGB image: smooth gradients, a few shapes, mild noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    red = 120 + 100 * np.sin(x / width * 3.1) * np.cos(y / height * 2.0)
    green = 90 + 80 * (y / height) + 30 * np.sin((x + y) / 9.0)
    blue = 160 - 90 * (x / width) + 20 * np.cos(y / 5.0)
    image = np.dstack([red, green, blue])
    disc = (x - width * 0.35) ** 2 + (y - height * 0.5) ** 2 < (height * 0.22) ** 2
    image[disc] = (230, 200, 40)
    image[int(height * 0.15):int(height * 0.4), int(width * 0.6):int(width * 0.85)] = (30, 60, 150)
    noise = np.random.default_rng(seed).normal(0, 3, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def sharp_scene(size: int) -> np.ndarray:
    """Flat shapes with hard edges and thin lines: detail a plain resize blurs."""
    image = Image.new("RGB", (size, size), (235, 230, 220))
    draw = ImageDraw.Draw(image)
    rng = np.random.default_rng(1)
    for _ in range(14):
        x, y = (int(v) for v in rng.integers(0, size, 2))
        w, h = (int(v) for v in rng.integers(size // 12, size // 2, 2))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        (draw.rectangle if rng.random() < 0.5 else draw.ellipse)([x, y, x + w, y + h], fill=colour)
    for i in range(6):
        draw.line([(0, size // 12 + i * size // 6), (size, size // 4 + i * size // 8)], fill=(20, 20, 20), width=3)
    return np.asarray(image)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / mse))
