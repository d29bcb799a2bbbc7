"""Frame: add a border or padding around the image, pad it out to a size or aspect
ratio, and round its corners.

These operations add pixels (of a fill colour, or transparent) or make corners
transparent; they never move the image's own pixels. Limits and the size phrases are
in dimensions.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import cv2
import numpy as np

from retouch.engine.ops import Context, Operation
from retouch.engine.ops.dimensions import (IT, LENGTH_UNIT, MAX_SIDE, RATIO, SIZE, Length, check_output_size,
                                           format_number, length_phrase, parse_length, parse_pixels,
                                           parse_ratio, require)
from retouch.engine.phrases import COLOR, NUMBER, parse_color, rule


@dataclass(frozen=True)
class Fill:
    """The colour of added pixels; ``rgb=None`` is transparent."""

    rgb: tuple[int, int, int] | None
    name: str


WHITE = Fill((255, 255, 255), "white")


# --- pad, border --------------------------------------------------------------------------

def to_rgba(canvas: np.ndarray) -> np.ndarray:
    """``canvas`` with an alpha channel (opaque where it had none); RGBA comes back as is."""
    if canvas.ndim == 2:
        return cv2.cvtColor(canvas, cv2.COLOR_GRAY2RGBA)
    if canvas.shape[2] == 3:
        return cv2.cvtColor(canvas, cv2.COLOR_RGB2RGBA)
    return canvas


def _pad(canvas: np.ndarray, edges: tuple[int, int, int, int], fill: Fill, action: str) -> np.ndarray:
    """``canvas`` with (top, bottom, left, right) pixels of ``fill`` added."""
    top, bottom, left, right = edges
    check_output_size(canvas.shape[1] + left + right, canvas.shape[0] + top + bottom, action)
    canvas, value = _fillable(canvas, fill)
    return cv2.copyMakeBorder(canvas, top, bottom, left, right, cv2.BORDER_CONSTANT, value=value)


def _fillable(canvas: np.ndarray, fill: Fill) -> tuple[np.ndarray, tuple[int, ...]]:
    """The canvas in a mode that can hold ``fill`` (gray stays gray for gray fills), and
    the pixel value of the fill in that mode."""
    if fill.rgb is None:
        return to_rgba(canvas), (0, 0, 0, 0)
    if canvas.ndim == 2:
        if len(set(fill.rgb)) == 1:
            return canvas, (fill.rgb[0],)
        canvas = cv2.cvtColor(canvas, cv2.COLOR_GRAY2RGB)
    return canvas, (*fill.rgb, 255) if canvas.shape[2] == 4 else fill.rgb


@dataclass(frozen=True)
class Border(Operation):
    """Add ``width`` of ``color`` on every side; a percentage is of the shorter side."""

    width: Length = Length(10)
    color: Fill = WHITE

    def __post_init__(self) -> None:
        upper = 100 if self.width.unit == "%" else MAX_SIDE // 2
        require(0 < self.width.value <= upper,
                f"A border of {self.width} is not possible; use more than 0 and at most {upper}{self.width.unit}.")

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        width = max(1, self.width.pixels(min(canvas.shape[:2])))
        return _pad(canvas, (width,) * 4, self.color, self.describe())

    def describe(self) -> str:
        return f"border {self.width} {self.color.name}"


@dataclass(frozen=True)
class PadTo(Operation):
    """Extend the canvas around the centred image to ``size`` (width, height), or just
    enough to reach the aspect ``ratio``, filling with ``color``."""

    size: tuple[int, int] | None = None
    ratio: tuple[float, float] | None = None
    color: Fill = WHITE

    def __post_init__(self) -> None:
        if self.size is not None:
            require(all(1 <= side <= MAX_SIDE for side in self.size),
                    f"Padding to {self._target_text()} is not possible; each side must be 1..{MAX_SIDE} pixels.")
        else:
            require(all(0 < part <= MAX_SIDE for part in self.ratio),
                    f"An aspect ratio of {self._target_text()} is not possible; both parts must be above 0.")

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        height, width = canvas.shape[:2]
        new_w, new_h = self.size or _grow_to_ratio(width, height, self.ratio)
        require(new_w >= width and new_h >= height,
                f"'{self.describe()}' is smaller than the {width}x{height} image; pad to at least "
                f"{width}x{height}, or crop instead.")
        top, left = (new_h - height) // 2, (new_w - width) // 2
        edges = (top, new_h - height - top, left, new_w - width - left)
        return _pad(canvas, edges, self.color, self.describe())

    def describe(self) -> str:
        return f"pad to {self._target_text()} with {self.color.name}"

    def _target_text(self) -> str:
        if self.size is not None:
            return f"{self.size[0]}x{self.size[1]}"
        return "square" if self.ratio[0] == self.ratio[1] else ":".join(format_number(p) for p in self.ratio)


def _grow_to_ratio(width: int, height: int, ratio: tuple[float, float]) -> tuple[int, int]:
    target = ratio[0] / ratio[1]
    if width / height < target:
        return max(width, round(height * target)), height
    return width, max(height, round(width / target))


# --- rounded corners ----------------------------------------------------------------------

@dataclass(frozen=True)
class RoundCorners(Operation):
    """Make the corners transparent outside quarter circles of ``radius`` (a percentage
    is of the shorter side), with anti-aliased edges. The result is RGBA."""

    radius: Length = Length(5, "%")

    def __post_init__(self) -> None:
        upper = 50 if self.radius.unit == "%" else MAX_SIDE // 2
        require(0 < self.radius.value <= upper,
                f"A corner radius of {self.radius} is not possible; use more than 0 and at most "
                f"{upper}{self.radius.unit}.")

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        height, width = canvas.shape[:2]
        radius = max(1, self.radius.pixels(min(height, width)))
        require(2 * radius <= min(height, width),
                f"A corner radius of {radius}px is more than half of the {width}x{height} image's "
                f"shorter side; use at most {min(height, width) // 2}px, or a percentage up to 50%.")
        out = to_rgba(canvas)
        out = out.copy() if out is canvas else out
        _fade_corners(out[..., 3], _corner_coverage(radius))
        return out

    def describe(self) -> str:
        return f"round corners {self.radius}"


def _corner_coverage(radius: int) -> np.ndarray:
    """The top-left radius×radius patch: 255 inside the quarter circle, 0 outside, and
    the covered fraction of each pixel on its edge."""
    centres = np.arange(radius, dtype=np.float32) + 0.5
    distance = np.hypot(radius - centres[None, :], radius - centres[:, None])
    coverage = np.clip(radius - distance + 0.5, 0, 1)
    return (coverage * 255 + 0.5).astype(np.uint8)


def _fade_corners(alpha: np.ndarray, corner: np.ndarray) -> None:
    """Scale the four corners of ``alpha`` in place by ``corner`` (0..255), mirrored to
    each; only these small patches are touched, never the whole image."""
    r = len(corner)
    for view in (alpha[:r, :r], alpha[:r, -r:][:, ::-1], alpha[-r:, :r][::-1], alpha[-r:, -r:][::-1, ::-1]):
        view[...] = (view.astype(np.uint16) * corner + 127) // 255


# --- phrases ------------------------------------------------------------------------------

_FILL = rf"(?:{COLOR}|\btransparent\b)"


def _parse_fill(text: str | None) -> Fill:
    if not text:
        return WHITE
    return Fill(None, "transparent") if text == "transparent" else Fill(parse_color(text), text)


# Pad and border: "pad to 1024x1024 with black", "pad to square with white",
# "make it square with white padding", "add a 10px red border", "add 5% padding".
_PAD_TO = (rf"\b(?:pad|extend|expand|letterbox|pillarbox)(?:\s+(?:it|the\s+(?:image|canvas)|image|canvas))?"
           rf"(?:\s+out)?\s+(?:to|into)\s+(?:an?\s+)?(?:{SIZE}|{RATIO})"
           rf"(?:\s+(?:with|in|using)(?:\s+an?\b)?\s+(?P<color>{_FILL}))?(?:\s+(?:padding|bars|borders?|space|fill))?")
_MAKE_PADDED = (rf"\bmake{IT}(?:\s+an?\b)?\s+{RATIO}(?:\s+(?:by|with|using)(?:\s+adding)?(?:\s+an?\b)?"
                rf"(?:\s+(?P<color>{_FILL}))?\s+(?:padding|pad|bars|borders?)\b|,?\s+padded)"
                rf"(?:\s+(?:with|in)(?:\s+an?\b)?\s+(?P<color2>{_FILL}))?")
_PAD_TO_MAKE = (rf"\b(?:add|use)\s+(?:(?P<color>{_FILL})\s+)?(?:padding|bars|borders?)\s+to\s+make{IT}"
                rf"(?:\s+an?\b)?\s+{RATIO}")
_WEIGHTS = {"thin": Length(1, "%"), "narrow": Length(1, "%"), "thick": Length(5, "%"), "heavy": Length(5, "%")}
_SPEC = rf"(?:{NUMBER}\s*(?:{LENGTH_UNIT})?(?:\s+(?:wide|thick))?|{_FILL}|solid|{'|'.join(_WEIGHTS)})"
# At most four specs ("a 10px thick solid red border"): an unbounded repeat makes a long
# run of numbers cost quadratic time.
_SPECS = rf"{_SPEC}(?:\s+(?:and\s+|of\s+)?{_SPEC}){{0,3}}"
_BORDER = (rf"\b(?:(?:add|put|draw|place|apply|give(?:\s+it)?|with)\s+)?(?:an?\s+)?(?:(?P<pre>{_SPECS})\s+)?"
           rf"(?:colou?red\s+)?(?:border|frame|padding|margin)s?\b(?:\s+(?:of|with|in|at))?(?:\s+an?\b)?"
           rf"(?:\s+(?P<post>{_SPECS}))?(?:\s+(?:padding|border))?"
           rf"(?:\s+(?:all\s+)?(?:around|on|to)\s+(?:it|the\s+image|image|(?:all|each|every)\s+sides?|the\s+edges?))?")
_PAD_BY = (rf"\bpad\b{IT}(?:\s+(?:by|with|out))?(?:\s+(?P<post>{_SPECS}))?(?:\s+(?:padding|border))?"
           rf"(?:\s+(?:on|around)\s+(?:each|every|all)\s+sides?)?")


def _build_pad_to(match) -> Operation:
    fill = _parse_fill(match["color"] or match.groupdict().get("color2"))
    if match.groupdict().get("w"):
        return PadTo(size=(parse_pixels(match["w"]), parse_pixels(match["h"])), color=fill)
    return PadTo(ratio=parse_ratio(match["ratio"]), color=fill)


def _build_border(match) -> Operation:
    spec = " ".join(part for part in (match.groupdict().get("pre"), match["post"]) if part)
    color = re.search(_FILL, spec)
    if color:
        spec = spec[:color.start()] + " " + spec[color.end():]
    amount = re.search(length_phrase("amt"), spec)
    weight = re.search("|".join(_WEIGHTS), spec)
    width = parse_length(amount, "amt") if amount else _WEIGHTS[weight[0]] if weight else Length(10)
    return Border(width, _parse_fill(color[0] if color else None))


# Rounded corners: "round the corners", "rounded corners with radius 40", "round corners 10%".
_ROUND = (rf"\b(?:(?:add|give(?:\s+it)?|apply|with)\s+)?(?:an?\s+)?(?:{length_phrase('pre')}\s+)?"
          rf"(?:round(?:ed)?(?:\s+off)?\s+(?:the\s+|its\s+|all\s+)?(?:(?:four|4)\s+)?corners?|corner\s+radius"
          rf"|make\s+(?:the\s+)?corners\s+round(?:ed)?)"
          rf"(?:\s+(?:by|of|with|to|at|using))?(?:\s+an?\b)?(?:\s+(?:corner\s+)?radius)?(?:\s+(?:of|=|:))?"
          rf"(?:\s+{length_phrase('post')})?(?:\s+radius)?")


def _build_round(match) -> Operation:
    for name in ("pre", "post"):
        if match[name]:
            return RoundCorners(parse_length(match, name))
    return RoundCorners()


# Order matters: the first rule to match a span claims it. instructions.py puts the rules
# of crop.py between these two groups (see the note on order in geometry.py).
PAD_TO_RULES = (
    rule(_PAD_TO, _build_pad_to),
    rule(_MAKE_PADDED, _build_pad_to),
    rule(_PAD_TO_MAKE, _build_pad_to),
)
EDGE_RULES = (
    rule(_ROUND, _build_round),
    rule(_BORDER, _build_border),
    rule(_PAD_BY, _build_border),
)
RULES = PAD_TO_RULES + EDGE_RULES
