"""Crop: keep the centred region of an aspect ratio or a size, or cut amounts off the edges.

Crops copy nothing: the result is a view of the canvas. Limits and the size phrases
are in dimensions.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from retouch.engine.ops import Context, Operation
from retouch.engine.ops.dimensions import (IT, MAX_SIDE, RATIO, SIZE, Length, format_number, length_phrase,
                                           parse_length, parse_pixels, parse_ratio, require)
from retouch.engine.phrases import rule


def crop_centre(canvas: np.ndarray, width: int, height: int) -> np.ndarray:
    """The centred width×height region (a view: crops copy nothing)."""
    top = (canvas.shape[0] - height) // 2
    left = (canvas.shape[1] - width) // 2
    return canvas[top:top + height, left:left + width]


@dataclass(frozen=True)
class CropToAspect(Operation):
    """Keep the largest centred region whose width:height is ``ratio``."""

    ratio: tuple[float, float]

    def __post_init__(self) -> None:
        require(all(0 < part <= MAX_SIDE for part in self.ratio),
                f"An aspect ratio of {self._ratio_text()} is not possible; both parts must be above 0.")

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        height, width = canvas.shape[:2]
        target = self.ratio[0] / self.ratio[1]
        if width / height > target:
            return crop_centre(canvas, max(1, round(height * target)), height)
        return crop_centre(canvas, width, max(1, round(width / target)))

    def describe(self) -> str:
        return f"crop to {self._ratio_text()}"

    def _ratio_text(self) -> str:
        return "square" if self.ratio[0] == self.ratio[1] else ":".join(format_number(p) for p in self.ratio)


@dataclass(frozen=True)
class CropToSize(Operation):
    """Keep the centred ``width``×``height`` region."""

    width: int
    height: int

    def __post_init__(self) -> None:
        require(1 <= self.width <= MAX_SIDE and 1 <= self.height <= MAX_SIDE,
                f"Cropping to {self.width}x{self.height} is not possible; each side must be 1..{MAX_SIDE} pixels.")

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        height, width = canvas.shape[:2]
        require(self.width <= width and self.height <= height,
                f"'{self.describe()}' is larger than the {width}x{height} image; ask for a crop "
                f"of at most {width}x{height}, or pad instead.")
        return crop_centre(canvas, self.width, self.height)

    def describe(self) -> str:
        return f"crop to {self.width}x{self.height}"


SIDES = ("top", "bottom", "left", "right")


@dataclass(frozen=True)
class CropEdges(Operation):
    """Cut ``amount`` off each of ``sides``; a percentage is of the image's height (top,
    bottom) or width (left, right)."""

    amount: Length
    sides: tuple[str, ...] = SIDES

    def __post_init__(self) -> None:
        limit = 50 if self._opposite_sides() else 100
        upper = limit if self.amount.unit == "%" else MAX_SIDE
        require(0 < self.amount.value < upper,
                f"Cropping {self.amount} from {self._sides_text()} is not possible; use more than 0 "
                f"and less than {upper}{self.amount.unit}.")

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        height, width = canvas.shape[:2]
        across, down, sides = self.amount.pixels(width), self.amount.pixels(height), self.sides
        top, bottom = down * ("top" in sides), down * ("bottom" in sides)
        left, right = across * ("left" in sides), across * ("right" in sides)
        require(top + bottom < height and left + right < width,
                f"'{self.describe()}' leaves nothing of the {width}x{height} image; crop less.")
        return canvas[top:height - bottom, left:width - right]

    def describe(self) -> str:
        return f"crop {self.amount} from {self._sides_text()}"

    def _sides_text(self) -> str:
        if len(self.sides) == 4:
            return "each side"
        if len(self.sides) == 1:
            return self.sides[0]
        return ", ".join(self.sides[:-1]) + " and " + self.sides[-1]

    def _opposite_sides(self) -> bool:
        return {"top", "bottom"} <= set(self.sides) or {"left", "right"} <= set(self.sides)


# --- phrases ------------------------------------------------------------------------------

# Crop: "crop to 16:9", "crop it square", "make it square", "crop to 800x600",
# "crop 10 pixels from each side", "crop 20% off the top", "trim the left and right by 5%".
_CROP = r"\b(?:crop|cut|trim)\b"
_CROP_ASPECT = rf"{_CROP}{IT}(?:\s+(?:down|it))?(?:\s+(?:to|into|as))?(?:\s+an?\b)?\s+{RATIO}"
_MAKE_ASPECT = (rf"\b(?:make|change|set)(?:\s+(?:it|the\s+image|image)|\s+(?:the\s+)?aspect\s+ratio)"
                rf"(?:\s+to)?(?:\s+an?\b)?\s+{RATIO}")
_CROP_SIZE = (rf"{_CROP}{IT}(?:\s+(?:down|out))?(?:\s+(?:to|into))?(?:\s+(?:an?|the))?"
              rf"(?:\s+(?:centred|centered|central|middle|centre|center))?\s+{SIZE}"
              rf"(?:\s+(?:region|area|box|rectangle|part|section|piece))?"
              rf"(?:\s+(?:from|around|at|in)\s+(?:the\s+)?(?:centre|center|middle))?")
_SIDE = r"(?:top|bottom|left|right)"
_SIDES = (rf"(?:the\s+)?(?P<sides>(?:(?:each|every|all|both)\s+)?(?:(?:four|4)\s+)?(?:sides?|edges?|borders?)"
          rf"|{_SIDE}(?:\s*(?:,|and|&|/)\s*(?:and\s+)?(?:the\s+)?{_SIDE})*(?:\s+(?:sides?|edges?))?)\b")
_CUT = r"\b(?:crop|cut|trim|shave|chop|remove)\b(?:\s+off)?"
_CROP_EDGES = rf"{_CUT}{IT}(?:\s+by)?\s+{length_phrase('amt')}\s+(?:off|from|on|at|around)(?:\s+of)?\s+{_SIDES}"
_CROP_EDGES_AFTER = rf"{_CUT}{IT}\s+{_SIDES}(?:\s+(?:by|of))?\s+{length_phrase('amt')}"


def _parse_sides(text: str) -> tuple[str, ...]:
    named = tuple(side for side in SIDES if side in text)
    if named:
        return named
    if text.startswith("both") or text in ("side", "sides"):
        return ("left", "right")  # "the sides" are the left and right ones
    return SIDES


def _build_crop_edges(match) -> Operation:
    return CropEdges(parse_length(match, "amt"), _parse_sides(match["sides"]))


def _build_crop_size(match) -> Operation:
    return CropToSize(parse_pixels(match["w"]), parse_pixels(match["h"]))


def _build_crop_aspect(match) -> Operation:
    return CropToAspect(parse_ratio(match["ratio"]))


# Order matters: the first rule to match a span claims it. instructions.py places these
# between the two groups of frame.py (see the note on order in geometry.py).
RULES = (
    rule(_CROP_ASPECT, _build_crop_aspect),
    rule(_MAKE_ASPECT, _build_crop_aspect),
    rule(_CROP_SIZE, _build_crop_size),
    rule(_CROP_EDGES, _build_crop_edges),
    rule(_CROP_EDGES_AFTER, _build_crop_edges),
)
