"""Composing several images: collages, overlays and watermarks, blends, new backgrounds.

Image 1 is the canvas (as edited so far); the others are read from ``ctx.inputs``.
Inputs of different kinds meet on the richest one: gray and RGB become RGB, and
anything beside an RGBA image gains an opaque alpha.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import cv2
import numpy as np

from retouch.engine.ops import Context, Operation, merge_alpha, split_alpha
from retouch.engine.ops.style import images_to_read
from retouch.engine.phrases import COLOR, NUMBER, ordinal_name, parse_color, parse_number, ref, reference, rule
from retouch.errors import InvalidRequestError

MAX_SIDE = 8192  # px per side of any result (8192² = 64 MP)
MAX_GAP = 500
MAX_GRID = 16  # columns or rows; the engine takes at most 16 images
LAYOUTS = ("side by side", "stacked", "grid")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise InvalidRequestError(message, param="prompt", code="invalid_value")


def _fmt(value: float) -> str:
    return f"{value:g}"


def _resized(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if image.shape[1] == width and image.shape[0] == height:
        return image
    # Area averaging only where linear sampling would alias (shrinking 2x or more):
    # at other factors OpenCV's area path is several times slower than linear.
    halved = width * 2 <= image.shape[1] or height * 2 <= image.shape[0]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if halved else cv2.INTER_LINEAR)


def _channels(image: np.ndarray) -> int:
    return 1 if image.ndim == 2 else image.shape[2]


def _with_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """``image`` as 1, 3 or 4 channels (only ever adding: gray → RGB → RGBA)."""
    have = _channels(image)
    if have == channels:
        return image
    if have == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB if channels == 3 else cv2.COLOR_GRAY2RGBA)
    return cv2.cvtColor(image, cv2.COLOR_RGB2RGBA)


def _same_colour_kind(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two colour parts (no alpha) made both gray or both RGB."""
    if a.ndim == b.ndim:
        return a, b
    return _with_channels(a, 3), _with_channels(b, 3)


def _coverage(alpha: np.ndarray, opacity: float) -> np.ndarray:
    """uint8 alpha × ``opacity`` as float32 0–1, built in place (one full-size array)."""
    weight = alpha.astype(np.float32)
    weight *= opacity / 255
    return weight


def _over(fg: np.ndarray, weight: np.ndarray | float, bg: np.ndarray,
          bg_alpha: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Porter-Duff "over": ``fg`` with coverage ``weight`` (0–1) on ``bg``.

    Returns (colour, alpha); alpha is None when ``bg`` is opaque (so is the result)."""
    if bg_alpha is None:
        if np.isscalar(weight):
            return (fg if weight >= 1 else cv2.addWeighted(fg, weight, bg, 1 - weight, 0)), None
        return cv2.blendLinear(fg, bg, weight, 1 - weight), None
    if np.isscalar(weight):
        weight = np.full(bg_alpha.shape, weight, np.float32)
    behind = _coverage(bg_alpha, 1.0)
    behind *= 1 - weight
    # blendLinear divides by the sum of the weights: exactly the un-premultiplied colour.
    color = cv2.blendLinear(fg, bg, weight, behind)
    return color, np.clip((weight + behind) * 255 + 0.5, 0, 255).astype(np.uint8)


# --- collage -------------------------------------------------------------------------

@dataclass(frozen=True)
class Collage(Operation):
    """Every input in one picture: ``side by side`` (common height), ``stacked``
    (common width) or a ``grid`` (each image fitted into cells the size of image 1).

    Image 1 sets the common size; the result is scaled down to fit 8192 px per side.
    ``gap`` px of ``color`` separate the images and fill empty cells."""

    layout: str = "side by side"
    columns: int | None = None
    rows: int | None = None
    gap: int = 0
    color: tuple[int, int, int] = (255, 255, 255)
    color_name: str = "white"
    images_needed = 2

    def __post_init__(self) -> None:
        _require(self.layout in LAYOUTS, f"layout {self.layout!r} is unknown; use one of {', '.join(LAYOUTS)}.")
        _require(0 <= self.gap <= MAX_GAP, f"a gap of {self.gap}px is out of range; use 0–{MAX_GAP}px.")
        for name, count in (("columns", self.columns), ("rows", self.rows)):
            _require(count is None or 1 <= count <= MAX_GRID,
                     f"a grid of {count} {name} is out of range; use 1–{MAX_GRID}.")

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        images = [canvas] + [ctx.inputs[i] for i in range(1, len(ctx.inputs))]
        channels = max(max(_channels(image) for image in images), 1 if self._neutral() else 3)
        images = [_with_channels(image, channels) for image in images]
        fill = (self.color[0],) if channels == 1 else self.color + (255,) * (channels == 4)
        if self.layout == "grid":
            return self._grid(images, fill)
        return _strip(images, self.layout == "side by side", self.gap, fill)

    def _neutral(self) -> bool:
        return self.color[0] == self.color[1] == self.color[2]

    def _grid(self, images: list[np.ndarray], fill: tuple[int, ...]) -> np.ndarray:
        columns, rows = grid_shape(len(images), self.columns, self.rows)
        cell_h, cell_w = images[0].shape[:2]
        scale = min(1.0, (MAX_SIDE - self.gap * (columns - 1)) / (columns * cell_w),
                    (MAX_SIDE - self.gap * (rows - 1)) / (rows * cell_h))
        cell_w, cell_h = max(1, int(cell_w * scale)), max(1, int(cell_h * scale))
        tiles = [_fit_cell(image, cell_w, cell_h) for image in images]
        full = not self.gap and len(tiles) == columns * rows and all(t.shape[:2] == (cell_h, cell_w) for t in tiles)
        shape = (rows * cell_h + self.gap * (rows - 1), columns * cell_w + self.gap * (columns - 1))
        out = _blank(shape, fill, filled=not full)
        for index, tile in enumerate(tiles):
            row, column = divmod(index, columns)
            top = row * (cell_h + self.gap) + (cell_h - tile.shape[0]) // 2
            left = column * (cell_w + self.gap) + (cell_w - tile.shape[1]) // 2
            out[top:top + tile.shape[0], left:left + tile.shape[1]] = tile
        return out

    def describe(self) -> str:
        parts = [self._layout_name()]
        if self.gap:
            parts.append(f"{self.gap}px {self.color_name} gap")
        elif self.color_name != "white" and self.layout == "grid":
            parts.append(f"{self.color_name} background")
        return ", ".join(parts)

    def _layout_name(self) -> str:
        if self.layout != "grid":
            return "side by side" if self.layout == "side by side" else "stacked vertically"
        if self.columns and self.rows:
            return f"grid {self.columns}x{self.rows}"
        if self.columns or self.rows:
            return f"grid, {self.columns} columns" if self.columns else f"grid, {self.rows} rows"
        return "grid"


def grid_shape(count: int, columns: int | None, rows: int | None) -> tuple[int, int]:
    """(columns, rows) for ``count`` images: as asked, or as square as possible."""
    if columns is None and rows is None:
        columns = math.ceil(math.sqrt(count))
    if columns is None:
        columns = math.ceil(count / rows)
    rows = rows or math.ceil(count / columns)
    _require(columns * rows >= count,
             f"a {columns}x{rows} grid has {columns * rows} cells but {count} images were sent; "
             "ask for a larger grid, or just 'make a grid'.")
    return columns, rows


def _blank(shape: tuple[int, int], fill: tuple[int, ...], filled: bool) -> np.ndarray:
    """A new canvas, painted with ``fill`` unless every pixel will be overwritten."""
    out = np.empty(shape if len(fill) == 1 else shape + (len(fill),), np.uint8)
    if filled:
        _paint(out, fill)
    return out


def _paint(area: np.ndarray, fill: tuple[int, ...]) -> None:
    # Broadcasting a per-channel tuple is ~100x slower than copying whole rows of it.
    if len(set(fill)) == 1:
        area[...] = fill[0]
    else:
        area[...] = np.tile(np.array(fill, np.uint8), (area.shape[1], 1))


def _fit_cell(image: np.ndarray, width: int, height: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    return _resized(image, min(width, max(1, round(w * scale))), min(height, max(1, round(h * scale))))


def _strip(images: list[np.ndarray], horizontal: bool, gap: int, fill: tuple[int, ...]) -> np.ndarray:
    """Images in a row (common height) or a column (common width), scaled to fit MAX_SIDE."""
    axis = 1 if horizontal else 0
    cross = images[0].shape[1 - axis]
    ratios = [image.shape[axis] / image.shape[1 - axis] for image in images]
    room = MAX_SIDE - gap * (len(images) - 1)
    _require(room >= len(images), f"a {gap}px gap leaves no room for {len(images)} images in {MAX_SIDE}px.")
    cross = min(cross, MAX_SIDE, int(room / sum(ratios)))
    lengths = [max(1, round(r * cross)) for r in ratios]
    while sum(lengths) > room:  # rounding up may overshoot by a few pixels
        cross -= 1
        lengths = [max(1, round(r * cross)) for r in ratios]
    cross = max(cross, 1)
    tiles = [_resized(image, *((n, cross) if horizontal else (cross, n))) for image, n in zip(images, lengths)]
    if not gap:
        return cv2.hconcat(tiles) if horizontal else cv2.vconcat(tiles)
    total = sum(lengths) + gap * (len(tiles) - 1)
    out = _blank((cross, total) if horizontal else (total, cross), fill, filled=False)
    start = 0
    for tile, length in zip(tiles, lengths):
        end = start + length
        if horizontal:
            out[:, start:end] = tile
            _paint(out[:, end:end + gap], fill)
        else:
            out[start:end] = tile
            _paint(out[end:end + gap], fill)
        start = end + gap
    return out


# --- overlay / watermark ---------------------------------------------------------------

# (x, y) anchors as fractions of the free space; corners and edges keep a small margin.
ANCHORS = {
    "top-left": (0, 0), "top": (0.5, 0), "top-right": (1, 0),
    "left": (0, 0.5), "centre": (0.5, 0.5), "right": (1, 0.5),
    "bottom-left": (0, 1), "bottom": (0.5, 1), "bottom-right": (1, 1),
}
MARGIN = 0.02  # of the shorter side


@dataclass(frozen=True)
class Overlay(Operation):
    """Input ``source`` laid on the canvas at ``position``, ``size`` % of the canvas
    width, ``opacity`` %, through its own alpha. Parts past the edges are cut off.
    ``kind`` ("overlay" or "watermark") only names it."""

    source: int = 1
    position: str = "centre"
    size: float = 25
    opacity: float = 100
    kind: str = "overlay"

    def __post_init__(self) -> None:
        _require(self.position in ANCHORS, f"position {self.position!r} is unknown; use one of {', '.join(ANCHORS)}.")
        _require(0 < self.size <= 100, f"a size of {_fmt(self.size)}% is out of range; use 1–100% of the width.")
        _require(0 <= self.opacity <= 100, f"an opacity of {_fmt(self.opacity)}% is out of range; use 0–100%.")

    @property
    def images_needed(self) -> int:  # type: ignore[override]
        return images_to_read(self.source)

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        if self.opacity == 0:
            return canvas
        mark = self._scaled_mark(ctx.inputs[self.source], canvas.shape[1])
        left, top = self._origin(canvas.shape[:2], mark.shape[:2])
        x0, y0 = max(left, 0), max(top, 0)
        x1, y1 = min(left + mark.shape[1], canvas.shape[1]), min(top + mark.shape[0], canvas.shape[0])
        if x1 <= x0 or y1 <= y0:
            return canvas
        mark = mark[y0 - top:y1 - top, x0 - left:x1 - left]
        out = _with_channels(canvas, max(_channels(canvas), _channels(mark) if _channels(mark) != 4 else 3))
        out = out.copy() if out is canvas else out
        mark_color, mark_alpha = split_alpha(mark)
        color, alpha = split_alpha(out[y0:y1, x0:x1])
        mark_color, _ = _same_colour_kind(mark_color, color)
        weight = self.opacity / 100
        if mark_alpha is not None:
            weight = _coverage(mark_alpha, weight)
        color[...], new_alpha = _over(mark_color, weight, color, alpha)
        if alpha is not None:
            alpha[...] = new_alpha
        return out

    def _scaled_mark(self, mark: np.ndarray, canvas_width: int) -> np.ndarray:
        width = max(1, round(canvas_width * self.size / 100))
        height = max(1, round(mark.shape[0] * width / mark.shape[1]))
        _require(height <= MAX_SIDE, f"the {ordinal_name(self.source)} image at {_fmt(self.size)}% width "
                 f"would be {height}px tall; the limit is {MAX_SIDE}px. Use a smaller size.")
        return _resized(mark, width, height)

    def _origin(self, canvas_hw: tuple[int, int], mark_hw: tuple[int, int]) -> tuple[int, int]:
        margin = round(MARGIN * min(canvas_hw))
        fx, fy = ANCHORS[self.position]
        left = margin + fx * (canvas_hw[1] - mark_hw[1] - 2 * margin)
        top = margin + fy * (canvas_hw[0] - mark_hw[0] - 2 * margin)
        return round(left), round(top)

    def describe(self) -> str:
        verb = "watermark with" if self.kind == "watermark" else "overlay"
        return (f"{verb} the {ordinal_name(self.source)} image at the {self.position}, "
                f"{_fmt(self.size)}% width, opacity {_fmt(self.opacity)}%")


# --- blend -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Blend(Operation):
    """Mix ``amount`` % of input ``source`` (stretched to the canvas size) into the
    canvas; its transparent parts mix in less. The canvas keeps its alpha."""

    source: int = 1
    amount: float = 50

    def __post_init__(self) -> None:
        _require(0 <= self.amount <= 100, f"a blend of {_fmt(self.amount)}% is out of range; use 0–100%.")

    @property
    def images_needed(self) -> int:  # type: ignore[override]
        return images_to_read(self.source)

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        if self.amount == 0:
            return canvas
        color, alpha = split_alpha(canvas)
        other = _resized(ctx.inputs[self.source], canvas.shape[1], canvas.shape[0])
        other, other_alpha = split_alpha(other)
        other, color = _same_colour_kind(other, color)
        weight = self.amount / 100
        if other_alpha is not None:
            weight = _coverage(other_alpha, weight)
        mixed, _ = _over(other, weight, color, None)
        return merge_alpha(mixed, alpha)

    def describe(self) -> str:
        return f"blend {_fmt(self.amount)}% of the {ordinal_name(self.source)} image"


# --- background ------------------------------------------------------------------------

@dataclass(frozen=True)
class ReplaceBackground(Operation):
    """Input ``source`` (scaled to cover the canvas, centre-cropped) shows through where
    the canvas is transparent, or where the mask says edit. A canvas with neither
    alpha nor mask is refused: there is no background to tell apart."""

    source: int = 1

    @property
    def images_needed(self) -> int:  # type: ignore[override]
        return images_to_read(self.source)

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        color, alpha = split_alpha(canvas)
        region = ctx.edit_region()
        _require(alpha is not None or region is not None,
                 f"'{self.describe()}' needs to know where the background is: send image 1 with a "
                 "transparent background, or a mask (transparent where the background is). "
                 "'remove the background' can make it transparent first.")
        height, width = color.shape[:2]
        backdrop, backdrop_alpha = split_alpha(_cover(ctx.inputs[self.source], width, height))
        backdrop, color = _same_colour_kind(backdrop, color)
        if region is not None and region.shape != (height, width):
            region = cv2.resize(region.view(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
        if alpha is None:
            return _swap_region(color, backdrop, backdrop_alpha, region)
        weight = _coverage(alpha, 1.0)
        if region is not None:
            weight[region] = 0
        return merge_alpha(*_over(color, weight, backdrop, backdrop_alpha))

    def describe(self) -> str:
        return f"replace the background with the {ordinal_name(self.source)} image"


def _cover(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` scaled to cover width×height and centre-cropped (cropped first: less to resize)."""
    h, w = image.shape[:2]
    scale = max(width / w, height / h)
    crop_w, crop_h = min(w, max(1, round(width / scale))), min(h, max(1, round(height / scale)))
    left, top = (w - crop_w) // 2, (h - crop_h) // 2
    return _resized(image[top:top + crop_h, left:left + crop_w], width, height)


def _swap_region(color: np.ndarray, backdrop: np.ndarray, backdrop_alpha: np.ndarray | None,
                 region: np.ndarray) -> np.ndarray:
    """An opaque canvas with the masked region taken from the backdrop."""
    keep = region.view(np.uint8)
    out = cv2.copyTo(backdrop, keep, color.copy())
    if backdrop_alpha is None:
        return out
    return merge_alpha(out, np.where(region, backdrop_alpha, np.uint8(255)))


# --- phrases ---------------------------------------------------------------------------

# Numbers are atomic (no backtracking into "1111…"), and one that may start a match must
# start a word: otherwise a long run of digits costs time quadratic in its length.
_NUM = rf"(?>{NUMBER})"
_LEADING_NUM = rf"(?<![\w.]){_NUM}"

_ALL = (r"(?:them|these|those|both(?:\s+(?:of\s+them|images|pictures|photos))?"
        r"|all(?:\s+of\s+them|\s+(?:the\s+)?(?:images|pictures|photos))?"
        r"|(?:the\s+)?(?:(?:two|three|four|five|six|\d+)\s+)?(?:images|pictures|photos|pics|inputs))")
_JOIN = (r"(?:put|place|arrange|lay\s+out|lay|line\s+up|show|combine|join|stitch|merge|concatenate|"
         r"append|tile|stack|display|set)")
_JOINED = rf"\b{_JOIN}\s+(?:{_ALL}\s+)?(?:together\s+)?"
_EXTRAS = (
    rf"(?:\s*,?\s*(?:with\s+(?:an?\s+)?(?:(?P<gap>{_NUM})\s*(?:px|pixels?)\s+)?(?:(?P<gapcolor>{COLOR})\s+)?"
    r"(?P<gapword>gap|gutter|spacing|space|margin|border|padding|separator|divider)s?"
    rf"(?:\s+of\s+(?P<gap2>{_NUM})\s*(?:px|pixels?)?)?(?:\s+(?:in\s+)?between(?:\s+them|\s+(?:the\s+)?images)?)?"
    rf"|(?:on|with|over)\s+(?:an?\s+)?(?P<bg>{COLOR})\s+(?:background|backdrop)))*"
)
_SIDE = (
    rf"(?:{_JOINED}|\b(?:put|place|show|set)\s+(?:it|{ref('dst')})\s+)?"
    r"\b(?:side[- ]by[- ]side|next\s+to\s+each\s+other|beside\s+each\s+other)"
    r"(?:\s+(?:collage|montage|layout|comparison|strip))?"
    # "side by side with the second image": still every input, in order
    rf"(?:\s+(?:with|and)\s+(?:{_ALL}|{ref('src')}))?"
    rf"|{_JOINED}(?:horizontally|in\s+a\s+(?:horizontal\s+)?(?:row|line|strip)|left\s+to\s+right)"
    r"|\bhorizontal\s+(?:collage|strip|montage|layout)"
)
_STACK = (
    rf"{_JOINED}(?:vertically|on\s+top\s+of\s+each\s+other|top\s+to\s+bottom|in\s+a\s+(?:vertical\s+)?column)"
    rf"|(?:{_JOINED})?one\s+(?:above|below|under|beneath|on\s+top\s+of)\s+the\s+other"
    rf"|\bstack(?:\s+{_ALL})?|\bvertical\s+(?:collage|strip|stack|montage|layout)"
)
_GRID = (
    rf"(?:\b(?:{_JOIN}|make|create|build)\s+(?:{_ALL}\s+)?(?:(?:in|into|as|on|onto)\s+)?)?(?:an?\s+)?"
    rf"(?:(?P<cols>{_LEADING_NUM})\s*(?:x|×|by)\s*(?P<rows>{_NUM})\s+)?\b(?:grid|collage|contact\s+sheet)(?:\s+of\s+{_ALL})?"
    rf"(?:\s+(?:with|of)\s+(?P<ncols>{_NUM})\s+(?:columns?|cols)|\s+(?:with|of)\s+(?P<nrows>{_NUM})\s+rows?)?"
)


def _count(match, *names: str) -> int | None:
    for name in names:
        if match[name]:
            value = parse_number(match[name])
            _require(value.is_integer(), f"a grid needs whole numbers of columns and rows, not {match[name]}.")
            return int(value)
    return None


def _collage(layout: str):
    def build(match) -> Operation:
        size = match["gap"] or match["gap2"]
        gap = parse_number(size) if size else (10.0 if match["gapword"] else 0.0)
        _require(0 <= gap <= MAX_GAP and gap.is_integer(),
                 f"a gap of {_fmt(gap)}px is not possible; use a whole number of pixels, 0–{MAX_GAP}.")
        name = match["gapcolor"] or match["bg"] or "white"
        columns = _count(match, "cols", "ncols") if layout == "grid" else None
        rows = _count(match, "rows", "nrows") if layout == "grid" else None
        return Collage(layout, columns, rows, int(gap), parse_color(name), name)
    return build


_LOGO = (r"(?:(?:the|a|an|my)\s+)?(?:logo|watermark|graphic|stamp|overlay|icon|badge|signature|image|"
         r"picture|photo)\s+(?:from|in|of|on)\s+")
_FIRST = r"(?:it|the\s+(?:first\s+)?(?:image|photo|picture))"
_POSITION = (
    r"(?:(?:in|at|on|to|into|onto|over|near|towards?)\s+)?(?:the\s+|a\s+)?"
    r"(?P<pos>(?:top|upper|bottom|lower)[- ]?(?:left|right)(?:[- ]hand)?|top|bottom|left|right|cent(?:er|re)|"
    r"middle|corner)(?:\s+(?:corner|side|edge))?(?:\s+of\s+" + _FIRST + r")?"
)
_SIZE = (
    r"(?:(?:at|with|to|in)\s+)?(?:an?\s+)?(?:(?:size|width|scale)\s+(?:of\s+)?(?P<size>" + _NUM + r")\s*(?:%|percent)"
    r"|(?:scaled|sized|resized)\s+(?:down\s+)?to\s+(?P<size2>" + _NUM + r")\s*(?:%|percent)"
    r"|(?P<size3>" + _NUM + r")\s*(?:%|percent)\s*(?:size|sized|width|wide|scale|big|large"
    r"|of\s+(?:the|its)\s+(?:image\s+)?width|of\s+the\s+(?:first\s+)?image))"
)
_OPACITY = (
    r"(?:(?:at|with|to|in)\s+)?(?:an?\s+)?(?:(?:opacity|alpha)\s+(?:of\s+)?(?P<op>" + _NUM + r")\s*(?P<opct>%|percent)?"
    r"|(?P<op2>" + _NUM + r")\s*(?:%|percent)\s*(?:opacity|opaque|alpha|visible|visibility|strength)"
    r"|transparency\s+(?:of\s+)?(?P<tr>" + _NUM + r")\s*(?:%|percent)?"
    r"|(?P<tr2>" + _NUM + r")\s*(?:%|percent)\s*(?:transparency|transparent)"
    r"|(?P<semi>semi[- ]?transparent|half[- ]transparent|translucent|faint|subtle|half\s+opacity))"
)
_MODS = rf"(?:\s*,?\s*(?:and\s+)?(?:{_POSITION}|{_SIZE}|{_OPACITY}))"
_ONTO = (rf"(?:(?:on\s+top\s+of|on|onto|over|above)\s+(?:{_FIRST}|{ref('dst')})"
         r"|on\s+top\b(?!\s*[- ]?(?:left|right)))")
_OVERLAY = rf"\b(?:overlay|superimpose|paste|stamp)\s+(?:{_LOGO})?{ref('src')}(?:\s+{_ONTO})?{_MODS}*"
_PLACE_ON = rf"\b(?:put|place|add|insert|position|move)\s+(?:{_LOGO})?{ref('src')}\s+{_ONTO}{_MODS}*"
_PLACE_AT = rf"\b(?:put|place|add|insert|position|move)\s+(?:{_LOGO})?{ref('src')}{_MODS}+"
_AS_MARK = (rf"\b(?:add|use|put|place|apply|stamp|insert)\s+(?:{_LOGO})?{ref('src')}\s+as\s+(?:an?\s+|the\s+)?"
            rf"(?P<kind>watermark|overlay){_MODS}*")
_WATERMARK = (
    rf"\b(?:watermark\s+(?:{_FIRST}\s+|{ref('dst')}\s+)?(?:with|using)"
    r"|add\s+(?:an?\s+|the\s+)?watermark\s+(?:from|of|using|with))"
    rf"\s+(?:{_LOGO})?{ref('src')}{_MODS}*"
)

_POSITION_NAMES = {"center": "centre", "middle": "centre", "corner": "bottom-right", "upper": "top", "lower": "bottom"}


def _position(text: str | None, default: str) -> str:
    """"top right-hand" → "top-right", "center" → "centre", "corner" → "bottom-right"."""
    if not text:
        return default
    words = re.findall(r"top|bottom|upper|lower|left|right|cent(?:er|re)|middle|corner", text)
    return "-".join(_POSITION_NAMES.get(word, word) for word in words)


def _opacity(match, default: float) -> float:
    if match["op"]:
        value = parse_number(match["op"])
        return value * 100 if value <= 1 and not match["opct"] else value
    if match["op2"]:
        return parse_number(match["op2"])
    if match["tr"] or match["tr2"]:
        return 100 - parse_number(match["tr"] or match["tr2"])
    return 50 if match["semi"] else default


def _overlay(kind: str | None):
    def build(match) -> Operation:
        chosen = kind or match["kind"]
        size = match["size"] or match["size2"] or match["size3"]
        return Overlay(
            source=reference(match, "src"),
            position=_position(match["pos"], "bottom-right" if chosen == "watermark" else "centre"),
            size=parse_number(size) if size else 25,
            opacity=_opacity(match, 50 if chosen == "watermark" else 100),
            kind=chosen,
        )
    return build


_MIX = r"\b(?:blend|mix|merge|cross[- ]?fade|crossfade)"
_RATIO = rf"(?P<a>{_NUM})\s*%?\s*(?:/|:|(?<=\d)-(?=\d))\s*(?P<b>{_NUM})\s*%?(?:\s+(?:ratio|split|mix))?"
_PCT = (rf"(?:(?:at|by|with|to)\s+)?(?:an?\s+)?(?:(?:opacity|strength|weight|ratio|amount)\s+(?:of\s+)?)?"
        rf"(?P<pct>{_NUM})\s*(?:%|percent)(?:\s+(?:opacity|strength|weight|mix|blend|ratio))?")
_AMOUNT = (rf"(?:\s+(?:(?:at|in|with)\s+(?:an?\s+)?(?:ratio\s+(?:of\s+)?)?)?{_RATIO}|\s+{_PCT}"
           r"|\s+(?:equally|evenly|half\s+and\s+half|(?:at\s+)?half(?:\s+(?:strength|opacity))?))?")
_BLEND_BOTH = rf"{_MIX}\s+{_ALL}(?:\s+together)?{_AMOUNT}"
_BLEND_WITH = (rf"{_MIX}\s+(?:it\s+|{ref('dst')}\s+)?(?:(?:in|with|into|and)\s+)?(?:{_LOGO})?{ref('src')}"
               rf"(?:\s+(?:over|into|onto|with|on|in)\s+(?:{_FIRST}|{ref('dst2')}))?(?:\s+together)?{_AMOUNT}")
_BLEND_SHARE = (rf"{_MIX}\s+(?:in\s+)?(?P<pct>{_NUM})\s*(?:%|percent)\s+of\s+(?:{_LOGO})?{ref('src')}"
                rf"(?:\s+(?:into|over|with|onto|in)\s+{_FIRST})?")


def _blend(match) -> Operation:
    source = reference(match, "src") if "srco" in match.re.groupindex else 1
    if "a" in match.re.groupindex and match["a"]:
        first, second = parse_number(match["a"]), parse_number(match["b"])
        _require(first >= 0 and second >= 0 and first + second > 0,
                 f"a blend ratio of {match['a']}/{match['b']} is impossible; use two shares like 70/30.")
        return Blend(source, round(100 * second / (first + second), 2))
    return Blend(source, parse_number(match["pct"]) if match["pct"] else 50)


_BACKDROP = r"(?:background|backdrop|bg)"
_REPLACE_BG = (rf"\b(?:replace|change|swap|switch|set|substitute)\s+(?:the\s+|its\s+)?{_BACKDROP}"
               rf"(?:\s+of\s+(?:it|{ref('dst')}))?\s+(?:with|to|for|by)\s+(?:{_LOGO})?{ref('src')}")
_USE_AS_BG = (rf"\b(?:use|make|set|add)\s+{ref('src')}\s+(?:(?:as|to\s+be|for|into)\s+)?(?:the\s+|a\s+|its\s+)?"
              rf"(?:new\s+)?{_BACKDROP}(?:\s+(?:for|of|behind)\s+(?:it|{ref('dst')}))?")
_BEHIND = (rf"\b(?:put|place|add|set|move|insert)\s+{ref('src')}\s+(?:behind\s+(?:it|the\s+(?:subject|person|object|"
           rf"foreground)|{ref('dst')})|in\s+(?:the\s+)?(?:background|back)|as\s+(?:an?\s+|the\s+)?backdrop)")
_IN_FRONT = (rf"\b(?:put|place|paste|composite|set)\s+(?:it|the\s+(?:subject|person|object|foreground|cutout)|"
             rf"{ref('dst')})\s+(?:in\s+front\s+of|on\s+top\s+of|onto)\s+{ref('src')}"
             rf"(?:\s+as\s+(?:the\s+|a\s+)?{_BACKDROP})?")


def _background(match) -> Operation:
    return ReplaceBackground(source=reference(match, "src"))


RULES = (
    rule(_REPLACE_BG, _background),
    rule(_USE_AS_BG, _background),
    rule(_BEHIND, _background),
    rule(_IN_FRONT, _background),
    rule(rf"(?:{_SIDE}){_EXTRAS}", _collage("side by side")),
    rule(rf"(?:{_STACK}){_EXTRAS}", _collage("stacked")),
    rule(rf"(?:{_GRID}){_EXTRAS}", _collage("grid")),
    rule(_WATERMARK, _overlay("watermark")),
    rule(_AS_MARK, _overlay(None)),
    rule(_OVERLAY, _overlay("overlay")),
    rule(_PLACE_ON, _overlay("overlay")),
    rule(_PLACE_AT, _overlay("overlay")),
    rule(_BLEND_SHARE, _blend),
    rule(_BLEND_WITH, _blend),
    rule(_BLEND_BOTH, _blend),
)
