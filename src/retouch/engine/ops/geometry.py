"""Geometry: rotate, flip, resize, crop, pad and border, rounded corners.

These operations change the canvas's shape, never its colours. Amounts that are
wrong for any image (a 0 px size, a 150% crop) are refused when the prompt is
read; sizes that depend on the image (a crop larger than it, an output beyond
``MAX_SIDE`` per side or ``MAX_PIXELS`` in all) are refused when applied. Both
raise ``InvalidRequestError(param="prompt")``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import cv2
import numpy as np

from retouch.engine.ops import NO_CONTEXT, Context, Operation
from retouch.engine.phrases import COLOR, NUMBER, WORD_NUMBER, parse_color, parse_number, rule
from retouch.errors import InvalidRequestError

MAX_SIDE = 8192
MAX_PIXELS = 64_000_000


def require(ok: bool, message: str) -> None:
    """Refuse a request whose numbers cannot work: a 400 naming the value and the fix."""
    if not ok:
        raise InvalidRequestError(message, param="prompt", code="invalid_value")


def check_output_size(width: int, height: int, action: str) -> None:
    """Refuse an output larger than ``MAX_SIDE`` per side or ``MAX_PIXELS`` in all."""
    require(1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE and width * height <= MAX_PIXELS,
            f"'{action}' would make a {width}x{height} image; results may have 1 to {MAX_SIDE} "
            f"pixels per side and {MAX_PIXELS // 1_000_000} megapixels in all. Ask for a smaller size.")


@dataclass(frozen=True)
class Length:
    """A length in pixels (``px``), or a percentage (``%``) of a side of the image."""

    value: float
    unit: str = "px"

    def pixels(self, side: int) -> int:
        return round(side * self.value / 100) if self.unit == "%" else round(self.value)

    def __str__(self) -> str:
        return f"{_fmt(self.value)}{self.unit}"


@dataclass(frozen=True)
class Fill:
    """The colour of added pixels; ``rgb=None`` is transparent."""

    rgb: tuple[int, int, int] | None
    name: str


WHITE = Fill((255, 255, 255), "white")


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
            return f"rotate {_fmt(-self.degrees)}° counter-clockwise"
        return f"rotate {_fmt(self.degrees)}° clockwise"


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
                f"Resizing to {_fmt((self.scale or 0) * 100)}% is not possible; ask for a scale above 0% "
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
            canvas = _crop_centre(canvas, *_cover_region(canvas.shape[1], canvas.shape[0], new_w, new_h))
        return resize_to(canvas, new_w, new_h)

    def describe(self) -> str:
        if self.scale is not None:
            return f"resize {_fmt(self.scale * 100)}%"
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


# --- crop ---------------------------------------------------------------------------------

def _crop_centre(canvas: np.ndarray, width: int, height: int) -> np.ndarray:
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
            return _crop_centre(canvas, max(1, round(height * target)), height)
        return _crop_centre(canvas, width, max(1, round(width / target)))

    def describe(self) -> str:
        return f"crop to {self._ratio_text()}"

    def _ratio_text(self) -> str:
        return "square" if self.ratio[0] == self.ratio[1] else ":".join(_fmt(p) for p in self.ratio)


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
        return _crop_centre(canvas, self.width, self.height)

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
        return "square" if self.ratio[0] == self.ratio[1] else ":".join(_fmt(p) for p in self.ratio)


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


def _fmt(value: float) -> str:
    return f"{value:g}"


# --- phrases ------------------------------------------------------------------------------

_IT = r"(?:\s+(?:it|the\s+(?:image|picture|photo)|image|picture|photo))?"
_UNIT = r"px|pixels?|%|percent|per\s*cent"
_SIZE = r"(?P<w>\d+)\s*(?:x|×|by|\*)\s*(?P<h>\d+)(?:\s*(?:px|pixels))?"
_RATIO = (r"(?P<ratio>\d+(?:\.\d+)?\s*[:/]\s*\d+(?:\.\d+)?|\d+\s*(?:x|×|by)\s*\d+(?=\s+(?:aspect\s+)?ratio)"
          r"|square)(?:\s+(?:aspect\s+ratio|ratio|aspect|format|shape))?")
_FILL = rf"(?:{COLOR}|\btransparent\b)"


def _length(name: str) -> str:
    return rf"(?P<{name}>{NUMBER})\s*(?P<{name}_unit>{_UNIT})?"


def _parse_length(match: re.Match, name: str, default_unit: str = "px") -> Length:
    unit = match[f"{name}_unit"]
    value = parse_number(match[name])
    if unit is None:
        return Length(value, default_unit)
    return Length(value, "%" if unit == "%" or unit.startswith("per") else "px")


def _whole(text: str) -> int:
    """A pixel count from the prompt; absurd ones are refused before rounding."""
    value = parse_number(text)
    shown = text if len(text) <= 12 else text[:12] + "…"
    require(abs(value) <= 10 * MAX_SIDE,
            f"{shown} pixels is far beyond the limit of {MAX_SIDE} per side; ask for a smaller size.")
    return round(value)


def _parse_fill(text: str | None) -> Fill:
    if not text:
        return WHITE
    return Fill(None, "transparent") if text == "transparent" else Fill(parse_color(text), text)


def _parse_ratio(text: str) -> tuple[float, float]:
    if text == "square":
        return (1.0, 1.0)
    first, second = re.findall(r"\d+(?:\.\d+)?", text)
    return (float(first), float(second))


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


# Crop: "crop to 16:9", "crop it square", "make it square", "crop to 800x600",
# "crop 10 pixels from each side", "crop 20% off the top", "trim the left and right by 5%".
_CROP = r"\b(?:crop|cut|trim)\b"
_CROP_ASPECT = rf"{_CROP}{_IT}(?:\s+(?:down|it))?(?:\s+(?:to|into|as))?(?:\s+an?\b)?\s+{_RATIO}"
_MAKE_ASPECT = (rf"\b(?:make|change|set)(?:\s+(?:it|the\s+image|image)|\s+(?:the\s+)?aspect\s+ratio)"
                rf"(?:\s+to)?(?:\s+an?\b)?\s+{_RATIO}")
_CROP_SIZE = (rf"{_CROP}{_IT}(?:\s+(?:down|out))?(?:\s+(?:to|into))?(?:\s+(?:an?|the))?"
              rf"(?:\s+(?:centred|centered|central|middle|centre|center))?\s+{_SIZE}"
              rf"(?:\s+(?:region|area|box|rectangle|part|section|piece))?"
              rf"(?:\s+(?:from|around|at|in)\s+(?:the\s+)?(?:centre|center|middle))?")
_SIDE = r"(?:top|bottom|left|right)"
_SIDES = (rf"(?:the\s+)?(?P<sides>(?:(?:each|every|all|both)\s+)?(?:(?:four|4)\s+)?(?:sides?|edges?|borders?)"
          rf"|{_SIDE}(?:\s*(?:,|and|&|/)\s*(?:and\s+)?(?:the\s+)?{_SIDE})*(?:\s+(?:sides?|edges?))?)\b")
_CUT = r"\b(?:crop|cut|trim|shave|chop|remove)\b(?:\s+off)?"
_CROP_EDGES = rf"{_CUT}{_IT}(?:\s+by)?\s+{_length('amt')}\s+(?:off|from|on|at|around)(?:\s+of)?\s+{_SIDES}"
_CROP_EDGES_AFTER = rf"{_CUT}{_IT}\s+{_SIDES}(?:\s+(?:by|of))?\s+{_length('amt')}"


def _parse_sides(text: str) -> tuple[str, ...]:
    named = tuple(side for side in SIDES if side in text)
    if named:
        return named
    if text.startswith("both") or text in ("side", "sides"):
        return ("left", "right")  # "the sides" are the left and right ones
    return SIDES


def _build_crop_edges(match) -> Operation:
    return CropEdges(_parse_length(match, "amt"), _parse_sides(match["sides"]))


# Pad and border: "pad to 1024x1024 with black", "pad to square with white",
# "make it square with white padding", "add a 10px red border", "add 5% padding".
_PAD_TO = (rf"\b(?:pad|extend|expand|letterbox|pillarbox)(?:\s+(?:it|the\s+(?:image|canvas)|image|canvas))?"
           rf"(?:\s+out)?\s+(?:to|into)\s+(?:an?\s+)?(?:{_SIZE}|{_RATIO})"
           rf"(?:\s+(?:with|in|using)(?:\s+an?\b)?\s+(?P<color>{_FILL}))?(?:\s+(?:padding|bars|borders?|space|fill))?")
_MAKE_PADDED = (rf"\bmake{_IT}(?:\s+an?\b)?\s+{_RATIO}(?:\s+(?:by|with|using)(?:\s+adding)?(?:\s+an?\b)?"
                rf"(?:\s+(?P<color>{_FILL}))?\s+(?:padding|pad|bars|borders?)\b|,?\s+padded)"
                rf"(?:\s+(?:with|in)(?:\s+an?\b)?\s+(?P<color2>{_FILL}))?")
_PAD_TO_MAKE = (rf"\b(?:add|use)\s+(?:(?P<color>{_FILL})\s+)?(?:padding|bars|borders?)\s+to\s+make{_IT}"
                rf"(?:\s+an?\b)?\s+{_RATIO}")
_WEIGHTS = {"thin": Length(1, "%"), "narrow": Length(1, "%"), "thick": Length(5, "%"), "heavy": Length(5, "%")}
_SPEC = rf"(?:{NUMBER}\s*(?:{_UNIT})?(?:\s+(?:wide|thick))?|{_FILL}|solid|{'|'.join(_WEIGHTS)})"
# At most four specs ("a 10px thick solid red border"): an unbounded repeat makes a long
# run of numbers cost quadratic time.
_SPECS = rf"{_SPEC}(?:\s+(?:and\s+|of\s+)?{_SPEC}){{0,3}}"
_BORDER = (rf"\b(?:(?:add|put|draw|place|apply|give(?:\s+it)?|with)\s+)?(?:an?\s+)?(?:(?P<pre>{_SPECS})\s+)?"
           rf"(?:colou?red\s+)?(?:border|frame|padding|margin)s?\b(?:\s+(?:of|with|in|at))?(?:\s+an?\b)?"
           rf"(?:\s+(?P<post>{_SPECS}))?(?:\s+(?:padding|border))?"
           rf"(?:\s+(?:all\s+)?(?:around|on|to)\s+(?:it|the\s+image|image|(?:all|each|every)\s+sides?|the\s+edges?))?")
_PAD_BY = (rf"\bpad\b{_IT}(?:\s+(?:by|with|out))?(?:\s+(?P<post>{_SPECS}))?(?:\s+(?:padding|border))?"
           rf"(?:\s+(?:on|around)\s+(?:each|every|all)\s+sides?)?")


def _build_pad_to(match) -> Operation:
    fill = _parse_fill(match["color"] or match.groupdict().get("color2"))
    if match.groupdict().get("w"):
        return PadTo(size=(_whole(match["w"]), _whole(match["h"])), color=fill)
    return PadTo(ratio=_parse_ratio(match["ratio"]), color=fill)


def _build_border(match) -> Operation:
    spec = " ".join(part for part in (match.groupdict().get("pre"), match["post"]) if part)
    color = re.search(_FILL, spec)
    if color:
        spec = spec[:color.start()] + " " + spec[color.end():]
    amount = re.search(_length("amt"), spec)
    weight = re.search("|".join(_WEIGHTS), spec)
    width = _parse_length(amount, "amt") if amount else _WEIGHTS[weight[0]] if weight else Length(10)
    return Border(width, _parse_fill(color[0] if color else None))


# Rounded corners: "round the corners", "rounded corners with radius 40", "round corners 10%".
_ROUND = (rf"\b(?:(?:add|give(?:\s+it)?|apply|with)\s+)?(?:an?\s+)?(?:{_length('pre')}\s+)?"
          rf"(?:round(?:ed)?(?:\s+off)?\s+(?:the\s+|its\s+|all\s+)?(?:(?:four|4)\s+)?corners?|corner\s+radius"
          rf"|make\s+(?:the\s+)?corners\s+round(?:ed)?)"
          rf"(?:\s+(?:by|of|with|to|at|using))?(?:\s+an?\b)?(?:\s+(?:corner\s+)?radius)?(?:\s+(?:of|=|:))?"
          rf"(?:\s+{_length('post')})?(?:\s+radius)?")


def _build_round(match) -> Operation:
    for name in ("pre", "post"):
        if match[name]:
            return RoundCorners(_parse_length(match, name))
    return RoundCorners()


# Resize: "resize to 512x512", "scale down by 25%", "downscale by a factor of 2",
# "resize to fit 800x800", "resize to fill 800x800", "make it 500px tall",
# "twice as big", "half the size", "make it smaller".
_SCALE_VERB = (r"(?P<verb>resize|rescale|scale|shrink|enlarge|downscale|upscale|downsize"
               r"|(?:reduce|increase|decrease|change)\s+(?:the\s+|its\s+)?(?:image\s+)?(?:size|dimensions|resolution))")
_SCALE_HEAD = rf"\b{_SCALE_VERB}\b{_IT}(?:\s+(?P<dir>down|up))?"
_ANY_HEAD = rf"(?:(?:{_SCALE_HEAD}|\b(?:make|set)\b{_IT})(?:\s+to)?\s+)"
_RESIZE_BOXED = (rf"(?:(?:{_SCALE_HEAD}|\b(?:make|crop)\b{_IT})(?:\s+and\s+crop)?(?:\s+to|\s+so(?:\s+that)?\s+it)?\s+)?"
                 rf"\b(?P<mode>fit|fill|cover)s?{_IT}\s+(?:(?:in|inside|into|within)\s+)?(?:an?\s+)?{_SIZE}"
                 r"(?:\s+(?:box|frame|area|square|rectangle))?")
_RESIZE_EXACT = rf"{_SCALE_HEAD}(?:\s+(?:to|by|into))?(?:\s+exactly)?\s+{_SIZE}"
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
_RELATIVE_HEAD = rf"(?:\b(?:make|scale|resize|enlarge|shrink){_IT}(?:\s+(?:up|down))?(?:\s+(?:to|by))?\s+)?"
_RESIZE_RELATIVE = (rf"{_RELATIVE_HEAD}{_MULTIPLE}\s+(?:as\s+)?(?P<dir>bigger|larger|big|large|smaller|small)\b"
                    r"(?:\s+than\s+(?:it\s+is|before|the\s+original|now))?")
_RESIZE_SIZE_OF = (rf"{_RELATIVE_HEAD}{_MULTIPLE}\s+(?:of\s+)?(?:the|its)\s+(?:original\s+|current\s+)?"
                   r"(?:size|dimensions)\b")
_RESIZE_HALVE = r"\b(?P<verb>halve|double)\s+(?:the|its)\s+(?:size|dimensions|resolution)\b"
_RESIZE_DEFAULT = (rf"\b(?:make{_IT}\s+(?P<soft>(?:a\s+)?(?:bit|little|tad)(?:\s+bit)?\s+|slightly\s+)?"
                   rf"(?P<dir>bigger|larger|smaller)|(?P<verb>shrink|enlarge|downscale|upscale|downsize){_IT}"
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
    return Resize(width=_whole(match["w"]), height=_whole(match["h"]), mode=mode)


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
    pixels = _whole(match["px"])
    side = match["side"] if match.groupdict().get("side") else match["dim"]
    if side in ("wide", "width", "in width"):
        return Resize(width=pixels)
    return Resize(height=pixels)


def _build_box(match) -> Operation:
    pixels = _whole(match["px"])
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


def _build_crop_size(match) -> Operation:
    return CropToSize(_whole(match["w"]), _whole(match["h"]))


def _build_crop_aspect(match) -> Operation:
    return CropToAspect(_parse_ratio(match["ratio"]))


# Order matters: the first rule to match a span claims it. Phrases naming a box
# ("fit 800x800", "pad to 800x800") go before the plainer "resize to 800x800" and
# "crop to 800x600"; the default sizes ("make it smaller") go last.
RULES = (
    rule(_ROTATE, _build_rotate),
    rule(_FLIP, _build_flip),
    rule(_RESIZE_BOXED, _build_boxed),
    rule(_PAD_TO, _build_pad_to),
    rule(_MAKE_PADDED, _build_pad_to),
    rule(_PAD_TO_MAKE, _build_pad_to),
    rule(_CROP_ASPECT, _build_crop_aspect),
    rule(_MAKE_ASPECT, _build_crop_aspect),
    rule(_CROP_SIZE, _build_crop_size),
    rule(_CROP_EDGES, _build_crop_edges),
    rule(_CROP_EDGES_AFTER, _build_crop_edges),
    rule(_ROUND, _build_round),
    rule(_BORDER, _build_border),
    rule(_PAD_BY, _build_border),
    rule(_RESIZE_EXACT, lambda m: Resize(width=_whole(m["w"]), height=_whole(m["h"]))),
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
