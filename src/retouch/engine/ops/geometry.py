"""Geometry: rotate, flip, and resize (by a scale, to a size, to fit or fill a box).

These operations change the canvas's shape, never its colours. Cutting the canvas down
is in crop.py, adding pixels around it in frame.py; the size limits they share are in
dimensions.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from retouch.engine.ops import Context, Operation
from retouch.engine.ops.crop import crop_centre
from retouch.engine.ops.dimensions import (IT, MAX_SIDE, SIZE, check_output_size, format_number, parse_pixels,
                                           require)
from retouch.engine.ops.frame import to_rgba
from retouch.engine.phrases import NUMBER, WORD_NUMBER, parse_number, rule


# --- rotate, flip -------------------------------------------------------------------------

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

    def __post_init__(self) -> None:
        require(math.isfinite(self.degrees), "That angle is not a number of degrees; ask for e.g. 'rotate 90'.")

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        turn = self.degrees % 360
        if turn == 0:
            return canvas
        if turn in _QUARTER_TURNS:
            return cv2.rotate(canvas, _QUARTER_TURNS[int(turn)])
        return _rotate_any(canvas, turn, self.describe())

    def describe(self) -> str:
        if self.degrees < 0:
            return f"rotate {format_number(-self.degrees)}° counter-clockwise"
        return f"rotate {format_number(self.degrees)}° clockwise"


def _rotate_any(canvas: np.ndarray, degrees: float, action: str) -> np.ndarray:
    height, width = canvas.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), -degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_w, new_h = int(round(height * sin + width * cos)), int(round(height * cos + width * sin))
    check_output_size(new_w, new_h, action)
    matrix[0, 2] += new_w / 2 - width / 2
    matrix[1, 2] += new_h / 2 - height / 2
    # Corners the image no longer covers become transparent, not black.
    canvas = to_rgba(canvas)
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


# --- resize -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Resize(Operation):
    """Resize by ``scale``, or to ``width``×``height``: ``mode="exact"`` stretches to it
    (a missing side keeps the aspect ratio), ``"fit"`` fits inside it keeping the aspect
    ratio, ``"fill"`` covers it keeping the aspect ratio and crops the centre to it."""

    width: int | None = None
    height: int | None = None
    scale: float | None = None
    mode: str = "exact"

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            require(value is None or 1 <= value <= MAX_SIDE,
                    f"A {name} of {value} pixels is outside 1..{MAX_SIDE}; ask for a size in that range.")
        require(self.scale is None or 0 < self.scale <= MAX_SIDE,
                f"Resizing to {format_number((self.scale or 0) * 100)}% is not possible; ask for a scale above 0% "
                f"that keeps the result within {MAX_SIDE} pixels per side.")

    def target(self, width: int, height: int) -> tuple[int, int]:
        if self.scale is not None:
            return max(1, round(width * self.scale)), max(1, round(height * self.scale))
        if self.mode == "fit":
            factor = min(self.width / width, self.height / height)
            return max(1, round(width * factor)), max(1, round(height * factor))
        if self.width and self.height:
            return self.width, self.height
        if self.width:
            return self.width, max(1, round(height * self.width / width))
        return max(1, round(width * self.height / height)), self.height

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        new_w, new_h = self.target(canvas.shape[1], canvas.shape[0])
        check_output_size(new_w, new_h, self.describe())
        if self.mode == "fill":
            # Crop first, then resize: the same pixels as scaling to cover and then
            # cropping, for less work.
            canvas = crop_centre(canvas, *_cover_region(canvas.shape[1], canvas.shape[0], new_w, new_h))
        return resize_to(canvas, new_w, new_h)

    def describe(self) -> str:
        if self.scale is not None:
            return f"resize {format_number(self.scale * 100)}%"
        if self.mode in ("fit", "fill"):
            return f"resize to {self.mode} {self.width}x{self.height}"
        if self.width and self.height:
            return f"resize to {self.width}x{self.height}"
        return f"resize to width {self.width}" if self.width else f"resize to height {self.height}"


def resize_to(canvas: np.ndarray, width: int, height: int) -> np.ndarray:
    """``canvas`` resampled to exactly width×height (area averaging when shrinking)."""
    if (width, height) == (canvas.shape[1], canvas.shape[0]):
        return canvas
    shrinking = width * height < canvas.shape[0] * canvas.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return cv2.resize(canvas, (width, height), interpolation=interpolation)


def fit_inside(canvas: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale ``canvas`` to fit inside width×height, keeping its aspect ratio."""
    h, w = canvas.shape[:2]
    factor = min(width / w, height / h)
    return resize_to(canvas, max(1, round(w * factor)), max(1, round(h * factor)))


def _cover_region(width: int, height: int, new_w: int, new_h: int) -> tuple[int, int]:
    """The centred region of a width×height image that scales to cover new_w×new_h."""
    factor = max(new_w / width, new_h / height)
    return min(width, max(1, round(new_w / factor))), min(height, max(1, round(new_h / factor)))


# --- phrases ------------------------------------------------------------------------------

# Rotate: "rotate 90", "turn it left", "rotate -30", "tilt it minus 5 degrees".
_DIRECTION = (r"(?P<dir>counter[- ]?clockwise|anti[- ]?clockwise|clockwise|ccw|cw|to\s+the\s+left|"
              r"to\s+the\s+right|left|right)")
_SIDEWAYS = r"sideways|on\s+(?:its|the)\s+side"
_ROTATE = (
    rf"\b(?:rotate|tilt|(?:turn|spin)(?=\s+(?:it\s+|the\s+image\s+)?(?:by\s+)?(?:\d|{WORD_NUMBER}|"
    rf"clockwise|counter|anti|left|right|upside|half|{_SIDEWAYS})))\b(?:\s+(?:it|the\s+image|image))?\s*(?:by\s+)?"
    rf"(?:(?P<neg>minus\s+|negative\s+)?(?P<num>{NUMBER})\s*(?:degrees?|deg|°)?"
    rf"|(?P<half>half\s+a\s+turn|upside\s+down)|{_SIDEWAYS})?\s*{_DIRECTION}?"
)
_FLIP = (r"\b(?:flip|mirror)\b(?:\s+(?:it|the\s+image|image))?\s*"
         r"(?P<axis>horizontally|vertically|left[- ]to[- ]right|top[- ]to[- ]bottom|upside[- ]down|"
         r"horizontal|vertical)?")


def _build_rotate(match) -> Operation:
    degrees = parse_number(match["num"]) if match["num"] else (180 if match["half"] else 90)
    degrees = -degrees if match["neg"] else degrees
    direction = (match["dir"] or "").replace(" ", "")
    counter = direction.startswith(("counter", "anti", "ccw", "left", "totheleft"))
    return Rotate(-degrees if counter else degrees)


def _build_flip(match) -> Operation:
    axis = match["axis"] or ""
    vertical = any(word in axis for word in ("vertical", "upside", "top", "bottom"))
    return Flip("vertical" if vertical else "horizontal")

# Resize: "resize to 512x512", "scale down by 25%", "downscale by a factor of 2",
# "resize to fit 800x800", "resize to fill 800x800", "make it 500px tall",
# "twice as big", "half the size", "make it smaller".
_SCALE_VERB = (r"(?P<verb>resize|rescale|scale|shrink|enlarge|downscale|upscale|downsize"
               r"|(?:reduce|increase|decrease|change)\s+(?:the\s+|its\s+)?(?:image\s+)?(?:size|dimensions|resolution))")
_SCALE_HEAD = rf"\b{_SCALE_VERB}\b{IT}(?:\s+(?P<dir>down|up))?"
_ANY_HEAD = rf"(?:(?:{_SCALE_HEAD}|\b(?:make|set)\b{IT})(?:\s+to)?\s+)"
_RESIZE_BOXED = (rf"(?:(?:{_SCALE_HEAD}|\b(?:make|crop)\b{IT})(?:\s+and\s+crop)?(?:\s+to|\s+so(?:\s+that)?\s+it)?\s+)?"
                 rf"\b(?P<mode>fit|fill|cover)s?{IT}\s+(?:(?:in|inside|into|within)\s+)?(?:an?\s+)?{SIZE}"
                 r"(?:\s+(?:box|frame|area|square|rectangle))?")
_RESIZE_EXACT = rf"{_SCALE_HEAD}(?:\s+(?:to|by|into))?(?:\s+exactly)?\s+{SIZE}"
_RESIZE_PCT = (rf"{_SCALE_HEAD}(?:\s+(?P<prep>to|by))?\s+(?P<pct>{NUMBER})\s*(?:%|percent|per\s*cent)"
               r"(?:\s+of\s+(?:the\s+|its\s+)?(?:original\s+|current\s+)?size)?")
_RESIZE_FACTOR = (rf"{_SCALE_HEAD}(?:\s+(?:to|by))?(?:\s+a\s+factor\s+of\s+(?P<f1>{NUMBER})(?:\s*(?:x|×|times))?"
                  rf"|\s+(?P<f2>{NUMBER})\s*(?:x|×|times)\b)")
_RESIZE_SIDE = (rf"(?:{_SCALE_HEAD}|\b(?:make|set)\b)(?:\s+to)?\s+(?:(?:a|the|its)\s+)?(?P<side>width|height)"
                rf"\s+(?:(?:of|to|=|:|is)\s*)?(?P<px>{NUMBER})\s*(?:px|pixels?)?")
_RESIZE_DIM = (rf"{_ANY_HEAD}(?:(?:a|the)\s+)?(?P<px>{NUMBER})\s*(?:px|pixels?)?\s+"
               r"(?P<dim>wide|tall|high|in\s+width|in\s+height|width|height)\b")
_RESIZE_LONGEST = (rf"{_ANY_HEAD}?(?:so\s+(?:that\s+)?)?(?:the\s+|its\s+)?(?:longest|longer|long|largest|max(?:imum)?)"
                   rf"\s+(?:side|edge|dimension)\s+(?:(?:of|to|is|=|at|becomes)\s+)?(?P<px>{NUMBER})\s*(?:px|pixels?)?")
_RESIZE_BOX = (rf"{_SCALE_HEAD}\s+to\s+(?P<px>\d+)\s*(?:px|pixels?)?"
               r"(?![\d.%×]|\s*(?:x\b|by\b|percent|times|wide|tall|high|in\s))")
_MULTIPLE = (rf"(?:(?P<n>{NUMBER})\s*(?P<unit>x|×|times|%|percent)"
             r"|(?P<word>twice|half|double|triple|thrice|a\s+quarter|a\s+third))")
_RELATIVE_HEAD = rf"(?:\b(?:make|scale|resize|enlarge|shrink){IT}(?:\s+(?:up|down))?(?:\s+(?:to|by))?\s+)?"
_RESIZE_RELATIVE = (rf"{_RELATIVE_HEAD}{_MULTIPLE}\s+(?:as\s+)?(?P<dir>bigger|larger|big|large|smaller|small)\b"
                    r"(?:\s+than\s+(?:it\s+is|before|the\s+original|now))?")
_RESIZE_SIZE_OF = (rf"{_RELATIVE_HEAD}{_MULTIPLE}\s+(?:of\s+)?(?:the|its)\s+(?:original\s+|current\s+)?"
                   r"(?:size|dimensions)\b")
_RESIZE_HALVE = r"\b(?P<verb>halve|double)\s+(?:the|its)\s+(?:size|dimensions|resolution)\b"
_RESIZE_DEFAULT = (rf"\b(?:make{IT}\s+(?P<soft>(?:a\s+)?(?:bit|little|tad)(?:\s+bit)?\s+|slightly\s+)?"
                   rf"(?P<dir>bigger|larger|smaller)|(?P<verb>shrink|enlarge|downscale|upscale|downsize){IT}"
                   r"(?:\s+(?:down|up))?)\b")
_SHRINKING = ("shrink", "downscale", "downsize", "reduce", "decrease")
_GROWING = ("enlarge", "upscale", "increase")


def _direction(match) -> int:
    """-1 for words that shrink ("down", "shrink", "reduce …"), +1 for words that grow."""
    verb, way = match.groupdict().get("verb") or "", match.groupdict().get("dir") or ""
    if way == "down" or verb.startswith(_SHRINKING):
        return -1
    return 1 if way == "up" or verb.startswith(_GROWING) else 0


def _build_boxed(match) -> Operation:
    mode = "fit" if match["mode"] == "fit" else "fill"
    return Resize(width=parse_pixels(match["w"]), height=parse_pixels(match["h"]), mode=mode)


def _build_pct(match) -> Operation:
    part = parse_number(match["pct"]) / 100
    if match["prep"] == "by" and _direction(match):
        return Resize(scale=1 + _direction(match) * part)  # "reduce by 25%" → 75%
    return Resize(scale=part)


def _build_factor(match) -> Operation:
    factor = parse_number(match["f1"] or match["f2"])
    shrink = _direction(match) < 0 and factor > 1  # "downscale by 2x" → 50%
    return Resize(scale=1 / factor if shrink else factor)


def _build_side(match) -> Operation:
    pixels = parse_pixels(match["px"])
    side = match["side"] if match.groupdict().get("side") else match["dim"]
    if side in ("wide", "width", "in width"):
        return Resize(width=pixels)
    return Resize(height=pixels)


def _build_box(match) -> Operation:
    pixels = parse_pixels(match["px"])
    return Resize(width=pixels, height=pixels, mode="fit")


def _multiple(match) -> float:
    """The factor a ``_MULTIPLE`` names; percentages come back as fractions."""
    if match["word"]:
        return parse_number(match["word"].removeprefix("a "))
    value = parse_number(match["n"])
    return value / 100 if match["unit"] in ("%", "percent") else value


def _build_relative(match) -> Operation:
    factor, smaller = _multiple(match), match["dir"].startswith("small")
    if match["unit"] in ("%", "percent"):
        return Resize(scale=1 - factor if smaller else 1 + factor)  # "20% smaller" → 80%
    if smaller:
        require(factor > 0, "'0 times smaller' is not a size; ask for a factor above 0.")
        return Resize(scale=1 / factor)
    return Resize(scale=factor)


def _build_default(match) -> Operation:
    if match["verb"]:
        return Resize(scale=0.5 if match["verb"].startswith(("shrink", "down")) else 2)
    soft = bool(match["soft"])
    if match["dir"] == "smaller":
        return Resize(scale=0.75 if soft else 0.5)
    return Resize(scale=1.25 if soft else 2)


# Order matters: the first rule to match a span claims it. instructions.py puts the rules
# of frame.py and crop.py between these two groups, so phrases naming a box ("fit
# 800x800", "pad to 800x800") go before the plainer "resize to 800x800" and "crop to
# 800x600"; the default sizes ("make it smaller") go last.
TURN_AND_FIT_RULES = (
    rule(_ROTATE, _build_rotate),
    rule(_FLIP, _build_flip),
    rule(_RESIZE_BOXED, _build_boxed),
)
RESIZE_RULES = (
    rule(_RESIZE_EXACT, lambda m: Resize(width=parse_pixels(m["w"]), height=parse_pixels(m["h"]))),
    rule(_RESIZE_PCT, _build_pct),
    rule(_RESIZE_FACTOR, _build_factor),
    rule(_RESIZE_SIDE, _build_side),
    rule(_RESIZE_DIM, _build_side),
    rule(_RESIZE_LONGEST, _build_box),
    rule(_RESIZE_BOX, _build_box),
    rule(_RESIZE_RELATIVE, _build_relative),
    rule(_RESIZE_SIZE_OF, lambda m: Resize(scale=_multiple(m))),
    rule(_RESIZE_HALVE, lambda m: Resize(scale=0.5 if m["verb"] == "halve" else 2)),
    rule(_RESIZE_DEFAULT, _build_default),
)
RULES = TURN_AND_FIT_RULES + RESIZE_RULES
