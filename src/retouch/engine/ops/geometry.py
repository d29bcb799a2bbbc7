"""Geometry: rotate, flip, resize."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from retouch.engine.ops import NO_CONTEXT, Context, Operation
from retouch.engine.phrases import NUMBER, WORD_NUMBER, parse_number, rule

# Exact quarter turns need no resampling: cv2.rotate is a pure copy.
_QUARTER_TURNS = {
    90: cv2.ROTATE_90_CLOCKWISE,
    180: cv2.ROTATE_180,
    270: cv2.ROTATE_90_COUNTERCLOCKWISE,
}


@dataclass(frozen=True)
class Rotate(Operation):
    """Rotate clockwise by ``degrees``; the canvas grows to hold the whole image."""

    degrees: float

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        turn = self.degrees % 360
        if turn == 0:
            return canvas
        if turn in _QUARTER_TURNS:
            return cv2.rotate(canvas, _QUARTER_TURNS[int(turn)])
        return _rotate_any(canvas, turn)

    def describe(self) -> str:
        if self.degrees < 0:
            return f"rotate {_fmt(-self.degrees)}° counter-clockwise"
        return f"rotate {_fmt(self.degrees)}° clockwise"


def _rotate_any(canvas: np.ndarray, degrees: float) -> np.ndarray:
    height, width = canvas.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), -degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_w, new_h = int(round(height * sin + width * cos)), int(round(height * cos + width * sin))
    matrix[0, 2] += new_w / 2 - width / 2
    matrix[1, 2] += new_h / 2 - height / 2
    if canvas.ndim == 3 and canvas.shape[2] == 3:
        # Corners the image no longer covers become transparent, not black.
        canvas = cv2.cvtColor(canvas, cv2.COLOR_RGB2RGBA)
    return cv2.warpAffine(canvas, matrix, (new_w, new_h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


@dataclass(frozen=True)
class Flip(Operation):
    """Mirror left-right (``horizontal``) or upside down (``vertical``)."""

    direction: str

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        return cv2.flip(canvas, 1 if self.direction == "horizontal" else 0)

    def describe(self) -> str:
        return f"flip {self.direction}"


@dataclass(frozen=True)
class Resize(Operation):
    """Resize to ``width``×``height``; a missing side keeps the aspect ratio."""

    width: int | None = None
    height: int | None = None
    scale: float | None = None

    def target(self, width: int, height: int) -> tuple[int, int]:
        if self.scale is not None:
            return max(1, round(width * self.scale)), max(1, round(height * self.scale))
        if self.width and self.height:
            return self.width, self.height
        if self.width:
            return self.width, max(1, round(height * self.width / width))
        return max(1, round(width * self.height / height)), self.height

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        height, width = canvas.shape[:2]
        new_w, new_h = self.target(width, height)
        if (new_w, new_h) == (width, height):
            return canvas
        shrinking = new_w * new_h < width * height
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
        return cv2.resize(canvas, (new_w, new_h), interpolation=interpolation)

    def describe(self) -> str:
        if self.scale is not None:
            return f"resize {_fmt(self.scale * 100)}%"
        if self.width and self.height:
            return f"resize to {self.width}x{self.height}"
        return f"resize to width {self.width}" if self.width else f"resize to height {self.height}"


def fit_inside(canvas: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale ``canvas`` to fit inside width×height, keeping its aspect ratio."""
    h, w = canvas.shape[:2]
    factor = min(width / w, height / h)
    return Resize(scale=factor).apply(canvas, NO_CONTEXT)


def _fmt(value: float) -> str:
    return f"{value:g}"


def _build_rotate(match) -> Operation:
    degrees = parse_number(match["num"]) if match["num"] else (180 if match["half"] else 90)
    direction = (match["dir"] or "").replace(" ", "")
    counter = direction.startswith(("counter", "anti", "ccw", "left", "totheleft"))
    return Rotate(-degrees if counter else degrees)


def _build_flip(match) -> Operation:
    axis = match["axis"] or ""
    vertical = any(word in axis for word in ("vertical", "upside", "top", "bottom"))
    return Flip("vertical" if vertical else "horizontal")


def _build_resize(match) -> Operation:
    if match["w"] and match["h"]:
        return Resize(width=int(match["w"]), height=int(match["h"]))
    if match["pct"]:
        return Resize(scale=parse_number(match["pct"]) / 100)
    if match["factor"]:
        return Resize(scale=parse_number(match["factor"]))
    if match["side"] == "width":
        return Resize(width=int(match["px"]))
    return Resize(height=int(match["px"]))


_DIRECTION = (r"(?P<dir>counter[- ]?clockwise|anti[- ]?clockwise|clockwise|ccw|cw|to\s+the\s+left|"
              r"to\s+the\s+right|left|right)")
_ROTATE = (
    rf"\b(?:rotate|(?:turn|spin)(?=\s+(?:it\s+|the\s+image\s+)?(?:by\s+)?(?:\d|{WORD_NUMBER}|"
    rf"clockwise|counter|anti|left|right|upside|half)))\b(?:\s+(?:it|the\s+image|image))?\s*(?:by\s+)?"
    rf"(?:(?P<num>{NUMBER})\s*(?:degrees?|deg|°)?|(?P<half>half\s+a\s+turn|upside\s+down))?\s*{_DIRECTION}?"
)
_FLIP = (r"\b(?:flip|mirror)\b(?:\s+(?:it|the\s+image|image))?\s*"
         r"(?P<axis>horizontally|vertically|left[- ]to[- ]right|top[- ]to[- ]bottom|upside[- ]down|"
         r"horizontal|vertical)?")
_RESIZE = (
    r"\b(?:resize|scale|shrink|enlarge|downscale|upscale)\b(?:\s+(?:it|the\s+image|image))?\s*(?:down|up)?\s*"
    r"(?:(?:to|by)\s+)?(?:(?P<w>\d+)\s*(?:x|×|by)\s*(?P<h>\d+)(?:\s*px|\s*pixels)?"
    r"|(?P<pct>" + NUMBER + r")\s*(?:%|percent)"
    r"|(?:a\s+factor\s+of\s+)?(?P<factor>\d+(?:\.\d+)?)\s*(?:x|times)"
    r"|(?:a\s+)?(?P<side>width|height)\s+(?:of\s+)?(?P<px>\d+)\s*(?:px|pixels)?)"
)

RULES = (
    rule(_ROTATE, _build_rotate),
    rule(_FLIP, _build_flip),
    rule(_RESIZE, _build_resize),
)
