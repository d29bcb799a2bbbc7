"""Collages: every input in one picture, side by side, stacked, or in a grid.

Image 1 sets the common size and the others are read from ``ctx.inputs``; they meet on
the richest kind of image among them, as in compose.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from retouch.engine.ops import Context, Operation
from retouch.engine.ops.compose import ALL_IMAGES, NUM, channel_count, resized, with_channels
from retouch.engine.ops.dimensions import MAX_SIDE, format_number, require
from retouch.engine.phrases import COLOR, parse_color, parse_number, ref, rule

MAX_GAP = 500
MAX_GRID = 16  # columns or rows; the engine takes at most 16 images
LAYOUTS = ("side by side", "stacked", "grid")


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
        require(self.layout in LAYOUTS, f"layout {self.layout!r} is unknown; use one of {', '.join(LAYOUTS)}.")
        require(0 <= self.gap <= MAX_GAP, f"a gap of {self.gap}px is out of range; use 0–{MAX_GAP}px.")
        for name, count in (("columns", self.columns), ("rows", self.rows)):
            require(count is None or 1 <= count <= MAX_GRID,
                    f"a grid of {count} {name} is out of range; use 1–{MAX_GRID}.")

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        images = [canvas] + [ctx.inputs[i] for i in range(1, len(ctx.inputs))]
        channels = max(max(channel_count(image) for image in images), 1 if self._neutral() else 3)
        images = [with_channels(image, channels) for image in images]
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
    require(columns * rows >= count,
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
    return resized(image, min(width, max(1, round(w * scale))), min(height, max(1, round(h * scale))))


def _strip(images: list[np.ndarray], horizontal: bool, gap: int, fill: tuple[int, ...]) -> np.ndarray:
    """Images in a row (common height) or a column (common width), scaled to fit MAX_SIDE."""
    axis = 1 if horizontal else 0
    cross = images[0].shape[1 - axis]
    ratios = [image.shape[axis] / image.shape[1 - axis] for image in images]
    room = MAX_SIDE - gap * (len(images) - 1)
    require(room >= len(images), f"a {gap}px gap leaves no room for {len(images)} images in {MAX_SIDE}px.")
    cross = min(cross, MAX_SIDE, int(room / sum(ratios)))
    lengths = [max(1, round(r * cross)) for r in ratios]
    while sum(lengths) > room:  # rounding up may overshoot by a few pixels
        cross -= 1
        lengths = [max(1, round(r * cross)) for r in ratios]
    cross = max(cross, 1)
    tiles = [resized(image, *((n, cross) if horizontal else (cross, n))) for image, n in zip(images, lengths)]
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


# --- phrases ---------------------------------------------------------------------------

# A number that may start a match must start a word, for the reason given at NUM.
_LEADING_NUM = rf"(?<![\w.]){NUM}"
_JOIN = (r"(?:put|place|arrange|lay\s+out|lay|line\s+up|show|combine|join|stitch|merge|concatenate|"
         r"append|tile|stack|display|set)")
_JOINED = rf"\b{_JOIN}\s+(?:{ALL_IMAGES}\s+)?(?:together\s+)?"
_EXTRAS = (
    rf"(?:\s*,?\s*(?:with\s+(?:an?\s+)?(?:(?P<gap>{NUM})\s*(?:px|pixels?)\s+)?(?:(?P<gapcolor>{COLOR})\s+)?"
    r"(?P<gapword>gap|gutter|spacing|space|margin|border|padding|separator|divider)s?"
    rf"(?:\s+of\s+(?P<gap2>{NUM})\s*(?:px|pixels?)?)?(?:\s+(?:in\s+)?between(?:\s+them|\s+(?:the\s+)?images)?)?"
    rf"|(?:on|with|over)\s+(?:an?\s+)?(?P<bg>{COLOR})\s+(?:background|backdrop)))*"
)
_SIDE = (
    rf"(?:{_JOINED}|\b(?:put|place|show|set)\s+(?:it|{ref('dst')})\s+)?"
    r"\b(?:side[- ]by[- ]side|next\s+to\s+each\s+other|beside\s+each\s+other)"
    r"(?:\s+(?:collage|montage|layout|comparison|strip))?"
    # "side by side with the second image": still every input, in order
    rf"(?:\s+(?:with|and)\s+(?:{ALL_IMAGES}|{ref('src')}))?"
    rf"|{_JOINED}(?:horizontally|in\s+a\s+(?:horizontal\s+)?(?:row|line|strip)|left\s+to\s+right)"
    r"|\bhorizontal\s+(?:collage|strip|montage|layout)"
)
_STACK = (
    rf"{_JOINED}(?:vertically|on\s+top\s+of\s+each\s+other|top\s+to\s+bottom|in\s+a\s+(?:vertical\s+)?column)"
    rf"|(?:{_JOINED})?one\s+(?:above|below|under|beneath|on\s+top\s+of)\s+the\s+other"
    rf"|\bstack(?:\s+{ALL_IMAGES})?|\bvertical\s+(?:collage|strip|stack|montage|layout)"
)
_GRID = (
    rf"(?:\b(?:{_JOIN}|make|create|build)\s+(?:{ALL_IMAGES}\s+)?(?:(?:in|into|as|on|onto)\s+)?)?(?:an?\s+)?"
    rf"(?:(?P<cols>{_LEADING_NUM})\s*(?:x|×|by)\s*(?P<rows>{NUM})\s+)?\b(?:grid|collage|contact\s+sheet)"
    rf"(?:\s+of\s+{ALL_IMAGES})?"
    rf"(?:\s+(?:with|of)\s+(?P<ncols>{NUM})\s+(?:columns?|cols)|\s+(?:with|of)\s+(?P<nrows>{NUM})\s+rows?)?"
)


def _count(match, *names: str) -> int | None:
    for name in names:
        if match[name]:
            value = parse_number(match[name])
            require(value.is_integer(), f"a grid needs whole numbers of columns and rows, not {match[name]}.")
            return int(value)
    return None


def _collage(layout: str):
    def build(match) -> Operation:
        size = match["gap"] or match["gap2"]
        gap = parse_number(size) if size else (10.0 if match["gapword"] else 0.0)
        require(0 <= gap <= MAX_GAP and gap.is_integer(),
                f"a gap of {format_number(gap)}px is not possible; use a whole number of pixels, 0–{MAX_GAP}.")
        name = match["gapcolor"] or match["bg"] or "white"
        columns = _count(match, "cols", "ncols") if layout == "grid" else None
        rows = _count(match, "rows", "nrows") if layout == "grid" else None
        return Collage(layout, columns, rows, int(gap), parse_color(name), name)
    return build


RULES = (
    rule(rf"(?:{_SIDE}){_EXTRAS}", _collage("side by side")),
    rule(rf"(?:{_STACK}){_EXTRAS}", _collage("stacked")),
    rule(rf"(?:{_GRID}){_EXTRAS}", _collage("grid")),
)
