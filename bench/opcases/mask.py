"""Masked edits (and background removal) against the direct OpenCV/NumPy calls.

The mask region is a centred ellipse: a third of the image across for the cheap
edits, an eighth for inpainting (whose cost grows with the masked area)."""

from __future__ import annotations

import cv2
import numpy as np

from retouch.engine.ops import Context
from retouch.engine.ops.background import RemoveBackground
from retouch.engine.ops.mask import BlurMask, FillMask, InpaintMask, PixelateMask


_ELLIPSES: dict[tuple[int, int, int], np.ndarray] = {}  # made once per size, outside the timings


def ellipse(height: int, width: int, fraction: int) -> np.ndarray:
    """A bool HxW ellipse centred in the image, ``2 * width / fraction`` across."""
    key = (height, width, fraction)
    if key not in _ELLIPSES:
        canvas = np.zeros((height, width), np.uint8)
        cv2.ellipse(canvas, (width // 2, height // 2), (width // fraction, height // fraction), 0, 0, 360, 1, -1)
        _ELLIPSES[key] = canvas.astype(bool)
    return _ELLIPSES[key]


def masked(op, fraction: int):
    def ours(image, reference):
        region = ellipse(*image.shape[:2], fraction)
        return op.apply(image, Context([image, reference], region=lambda: region))
    return ours


def paste(image, edited, region):
    out = image.copy()
    np.copyto(out, edited, where=region[..., None])
    return out


def direct_inpaint(image, reference):
    region = ellipse(*image.shape[:2], 16)
    return cv2.inpaint(image, region.view(np.uint8), 5, cv2.INPAINT_TELEA)


def direct_fill(image, reference):
    out = image.copy()
    out[ellipse(*image.shape[:2], 6)] = (255, 0, 0)
    return out


def direct_blur(image, reference):
    return paste(image, cv2.GaussianBlur(image, (21, 21), 0), ellipse(*image.shape[:2], 6))


def direct_pixelate(image, reference):
    height, width = image.shape[:2]
    small = cv2.resize(image, (width // 16, height // 16), interpolation=cv2.INTER_AREA)
    blocks = cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)
    return paste(image, blocks, ellipse(height, width, 6))


def direct_remove_background(image, reference):
    low, high = (tuple(float(v) for v in np.clip(image[0, 0].astype(int) + d, 0, 255)) for d in (-32, 32))
    close = cv2.inRange(image, low, high)
    framed = cv2.copyMakeBorder(close, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=255)
    cv2.floodFill(framed, None, (0, 0), 128, 0, 0, 4)
    keep = cv2.compare(framed[1:-1, 1:-1], 128, cv2.CMP_NE)
    return np.dstack([image, cv2.min(cv2.GaussianBlur(keep, (3, 3), 0), keep)])


CASES = [
    ("inpaint masked area", masked(InpaintMask(), 16), direct_inpaint),
    ("fill masked area", masked(FillMask((255, 0, 0), "red"), 6), direct_fill),
    ("blur masked area", masked(BlurMask(10), 6), direct_blur),
    ("pixelate masked area", masked(PixelateMask(16), 6), direct_pixelate),
    ("remove background", lambda image, reference: RemoveBackground().apply(image, Context([image])),
     direct_remove_background),
]
