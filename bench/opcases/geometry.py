"""Benchmark cases for the geometry operations: each ``ours`` beside the most direct
OpenCV / NumPy / Pillow call that gives the same result (see the driver for timings).

Every callable takes (image RGB uint8, reference RGB uint8 of the same size).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image, ImageDraw

from retouch.engine.ops import Context, Operation
from retouch.engine.ops.crop import CropEdges, CropToAspect, CropToSize
from retouch.engine.ops.dimensions import Length
from retouch.engine.ops.frame import Border, Fill, PadTo, RoundCorners
from retouch.engine.ops.geometry import Flip, Resize, Rotate


def ours(op: Operation) -> Callable[[np.ndarray, np.ndarray], object]:
    return lambda image, reference: op.apply(image, Context([image, reference]))


def rotate_30(image, reference):
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), -30, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_w, new_h = round(height * sin + width * cos), round(height * cos + width * sin)
    matrix[0, 2] += new_w / 2 - width / 2
    matrix[1, 2] += new_h / 2 - height / 2
    rgba = cv2.cvtColor(image, cv2.COLOR_RGB2RGBA)
    return cv2.warpAffine(rgba, matrix, (new_w, new_h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def half(image, reference):
    return cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)


def fit_800(image, reference):
    height, width = image.shape[:2]
    factor = min(800 / width, 800 / height)
    return cv2.resize(image, (round(width * factor), round(height * factor)), interpolation=cv2.INTER_AREA)


def fill_800x450(image, reference):
    height, width = image.shape[:2]
    crop_h = round(width * 450 / 800)
    top = (height - crop_h) // 2
    return cv2.resize(image[top:top + crop_h], (800, 450), interpolation=cv2.INTER_AREA)


def crop_16_9(image, reference):
    height, width = image.shape[:2]
    crop_h = round(width * 9 / 16)
    top = (height - crop_h) // 2
    return image[top:top + crop_h]


def crop_800x600(image, reference):
    top, left = (image.shape[0] - 600) // 2, (image.shape[1] - 800) // 2
    return image[top:top + 600, left:left + 800]


def crop_10_percent(image, reference):
    height, width = image.shape[:2]
    dy, dx = round(height * 0.1), round(width * 0.1)
    return image[dy:height - dy, dx:width - dx]


def border_10(image, reference):
    return cv2.copyMakeBorder(image, 10, 10, 10, 10, cv2.BORDER_CONSTANT, value=(255, 255, 255))


def pad_16_9(image, reference):
    height, width = image.shape[:2]
    extra = round(height * 16 / 9) - width
    return cv2.copyMakeBorder(image, 0, 0, extra // 2, extra - extra // 2, cv2.BORDER_CONSTANT, value=(0, 0, 0))


def round_corners(image, reference):
    height, width = image.shape[:2]
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, width - 1, height - 1), round(min(height, width) * 0.05), fill=255)
    rgba = Image.fromarray(image).convert("RGBA")
    rgba.putalpha(mask)
    return np.asarray(rgba)


CASES: list[tuple[str, Callable[[np.ndarray, np.ndarray], object], Callable[[np.ndarray, np.ndarray], object]]] = [
    ("rotate 90", ours(Rotate(90)), lambda image, ref: cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)),
    ("rotate 30", ours(Rotate(30)), rotate_30),
    ("flip horizontal", ours(Flip("horizontal")), lambda image, ref: cv2.flip(image, 1)),
    ("resize 50%", ours(Resize(scale=0.5)), half),
    ("resize to fit 800x800", ours(Resize(width=800, height=800, mode="fit")), fit_800),
    ("resize to fill 800x450", ours(Resize(width=800, height=450, mode="fill")), fill_800x450),
    ("crop to 16:9", ours(CropToAspect((16, 9))), crop_16_9),
    ("crop to 800x600", ours(CropToSize(800, 600)), crop_800x600),
    ("crop 10% from each side", ours(CropEdges(Length(10, "%"))), crop_10_percent),
    ("border 10px white", ours(Border()), border_10),
    ("pad to 16:9 with black", ours(PadTo(ratio=(16, 9), color=Fill((0, 0, 0), "black"))), pad_16_9),
    ("round corners 5%", ours(RoundCorners()), round_corners),
]
