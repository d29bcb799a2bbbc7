"""Colour and tone operations."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from retouch.engine.ops import Context, Operation
from retouch.engine.phrases import rule


@dataclass(frozen=True)
class Grayscale(Operation):
    """Luma (ITU-R 601). Opaque images become one channel (R=G=B once decoded);
    transparent ones keep their alpha."""

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        if canvas.ndim == 2:
            return canvas
        gray = cv2.cvtColor(canvas[..., :3], cv2.COLOR_RGB2GRAY)
        if canvas.shape[2] == 4:
            return cv2.merge([gray, gray, gray, canvas[..., 3]])
        return gray

    def describe(self) -> str:
        return "grayscale"


RULES = (
    rule(r"\b(?:gr[ae]y\s*-?\s*scale|black\s*(?:-|and|&)\s*white|b\s*&\s*w|b/w|monochrome|"
         r"desaturated?|(?:remove|drop)\s+(?:all\s+)?(?:the\s+)?colou?rs?)\b", lambda m: Grayscale()),
)
