"""Benchmark cases for the filters: each operation against the plain OpenCV calls that
produce the same pixels.

The painterly looks run at a working size (see ``retouch.engine.ops.looks``), so their
direct counterparts scale down and back up in the same way; the full-size OpenCV calls
would be the slower ones (``cv2.stylization`` ≈ 30 s at 4096² on two cores).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from retouch.engine.ops import Context, Operation
from retouch.engine.ops.filters import Blur, DetailEnhance, DetectEdges, Denoise, Emboss, Pixelate, Sharpen, Vignette
from retouch.engine.ops.looks import Cartoon, OilPainting, PencilSketch, Watercolor

Case = tuple[str, Callable[[np.ndarray, np.ndarray], object], Callable[[np.ndarray, np.ndarray], object]]


def ours(operation: Operation) -> Callable[[np.ndarray, np.ndarray], object]:
    return lambda image, reference: operation.apply(image, Context([image, reference]))


def scaled(image: np.ndarray, look: Callable[[np.ndarray], np.ndarray], max_pixels: int) -> np.ndarray:
    height, width = image.shape[:2]
    if height * width <= max_pixels:
        return look(image)
    factor = (max_pixels / (height * width)) ** 0.5
    small = cv2.resize(image, (int(width * factor), int(height * factor)), interpolation=cv2.INTER_AREA)
    return cv2.resize(look(small), (width, height), interpolation=cv2.INTER_LINEAR)


def sharpen(image: np.ndarray) -> np.ndarray:
    return cv2.addWeighted(image, 2.0, cv2.GaussianBlur(image, (0, 0), 1.5), -1.0, 0)


def pixelate(image: np.ndarray, block: int) -> np.ndarray:
    height, width = image.shape[:2]
    small = cv2.resize(image, (width // block, height // block), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)


def vignette(image: np.ndarray, strength: float) -> np.ndarray:
    height, width = image.shape[:2]
    down = np.square(np.linspace(-1, 1, height, dtype=np.float32))
    across = np.square(np.linspace(-1, 1, width, dtype=np.float32))
    gain = np.rint(255 * (1 - strength * (down[:, None] + across[None, :]) * 0.5)).astype(np.uint8)
    return cv2.multiply(image, cv2.merge([gain, gain, gain]), scale=1 / 255)


def emboss(image: np.ndarray) -> np.ndarray:
    kernel = np.array([[-1, -1, 0], [-1, 0, 1], [0, 1, 1]], dtype=np.float32)
    return cv2.filter2D(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), -1, kernel, delta=128)


def cartoon(image: np.ndarray) -> np.ndarray:
    gray = cv2.medianBlur(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), 5)
    lines = cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 9, 5)
    flat = cv2.bilateralFilter(image, 9, 75, 75)
    return cv2.bitwise_and(flat, flat, mask=lines)


def pencil(image: np.ndarray) -> np.ndarray:
    return cv2.pencilSketch(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), sigma_s=60, sigma_r=0.07, shade_factor=0.05)[0]


def oil(image: np.ndarray) -> np.ndarray:
    brush = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    smooth = cv2.edgePreservingFilter(image, flags=cv2.RECURS_FILTER, sigma_s=30, sigma_r=0.4)
    return cv2.morphologyEx(cv2.morphologyEx(smooth, cv2.MORPH_OPEN, brush), cv2.MORPH_CLOSE, brush)


def detail(image: np.ndarray) -> np.ndarray:
    def enhance(rgb: np.ndarray) -> np.ndarray:
        bgr = cv2.detailEnhance(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), sigma_s=10, sigma_r=0.15)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    height, width = image.shape[:2]
    if height * width <= DetailEnhance.work_pixels:
        return enhance(image)
    factor = (DetailEnhance.work_pixels / (height * width)) ** 0.5
    small = cv2.resize(image, (int(width * factor), int(height * factor)), interpolation=cv2.INTER_AREA)
    boost = cv2.resize(cv2.addWeighted(enhance(small), 1, small, -1, 128), (width, height))
    return cv2.addWeighted(image, 1, boost, 1, -128)


CASES: list[Case] = [
    ("blur radius 3", ours(Blur(3)), lambda image, _: cv2.GaussianBlur(image, (0, 0), 3)),
    ("blur radius 10", ours(Blur(10)), lambda image, _: cv2.GaussianBlur(image, (0, 0), 10)),
    ("sharpen 100%", ours(Sharpen(1.0)), lambda image, _: sharpen(image)),
    ("denoise strength 35", ours(Denoise(35)), lambda image, _: cv2.bilateralFilter(image, 5, 35, 5)),
    ("pixelate 16px blocks", ours(Pixelate(16)), lambda image, _: pixelate(image, 16)),
    ("vignette 50%", ours(Vignette(0.5)), lambda image, _: vignette(image, 0.5)),
    ("emboss", ours(Emboss()), lambda image, _: emboss(image)),
    ("edge detection", ours(DetectEdges()),
     lambda image, _: cv2.Canny(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), 100, 200)),
    ("cartoon", ours(Cartoon()), lambda image, _: scaled(image, cartoon, Cartoon.work_pixels)),
    ("pencil sketch", ours(PencilSketch()), lambda image, _: scaled(image, pencil, PencilSketch.work_pixels)),
    ("watercolour", ours(Watercolor()),
     lambda image, _: scaled(image, lambda rgb: cv2.stylization(rgb, sigma_s=60, sigma_r=0.45),
                             Watercolor.work_pixels)),
    ("oil painting", ours(OilPainting()), lambda image, _: scaled(image, oil, OilPainting.work_pixels)),
    ("detail enhance", ours(DetailEnhance()), lambda image, _: detail(image)),
]
