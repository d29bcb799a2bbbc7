"""Composing several images: overlays and watermarks, blends, new backgrounds.
Collages (side by side, stacked, grid) are in collage.py, on the helpers here.

Image 1 is the canvas (as edited so far); the others are read from ``ctx.inputs``.
Inputs of different kinds meet on the richest one: gray and RGB become RGB, and
anything beside an RGBA image gains an opaque alpha.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import cv2
import numpy as np

from retouch.engine.ops import Context, Operation, merge_alpha, split_alpha
from retouch.engine.ops.dimensions import MAX_SIDE, format_number, require
from retouch.engine.ops.style import images_to_read
from retouch.engine.phrases import NUMBER, ordinal_name, parse_number, ref, reference, rule


def resized(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` at exactly width×height."""
    if image.shape[1] == width and image.shape[0] == height:
        return image
    # Area averaging only where linear sampling would alias (shrinking 2x or more):
    # at other factors OpenCV's area path is several times slower than linear.
    halved = width * 2 <= image.shape[1] or height * 2 <= image.shape[0]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if halved else cv2.INTER_LINEAR)


def channel_count(image: np.ndarray) -> int:
    """1 (gray), 3 (RGB) or 4 (RGBA)."""
    return 1 if image.ndim == 2 else image.shape[2]


def with_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """``image`` as 1, 3 or 4 channels (only ever adding: gray → RGB → RGBA)."""
    have = channel_count(image)
    if have == channels:
        return image
    if have == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB if channels == 3 else cv2.COLOR_GRAY2RGBA)
    return cv2.cvtColor(image, cv2.COLOR_RGB2RGBA)


def _same_colour_kind(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two colour parts (no alpha) made both gray or both RGB."""
    if a.ndim == b.ndim:
        return a, b
    return with_channels(a, 3), with_channels(b, 3)


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
        require(self.position in ANCHORS, f"position {self.position!r} is unknown; use one of {', '.join(ANCHORS)}.")
        require(0 < self.size <= 100,
                f"a size of {format_number(self.size)}% is out of range; use 1–100% of the width.")
        require(0 <= self.opacity <= 100,
                f"an opacity of {format_number(self.opacity)}% is out of range; use 0–100%.")

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
        out = with_channels(canvas, max(channel_count(canvas), channel_count(mark) if channel_count(mark) != 4 else 3))
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
        require(height <= MAX_SIDE, f"the {ordinal_name(self.source)} image at {format_number(self.size)}% width "
                f"would be {height}px tall; the limit is {MAX_SIDE}px. Use a smaller size.")
        return resized(mark, width, height)

    def _origin(self, canvas_hw: tuple[int, int], mark_hw: tuple[int, int]) -> tuple[int, int]:
        margin = round(MARGIN * min(canvas_hw))
        fx, fy = ANCHORS[self.position]
        left = margin + fx * (canvas_hw[1] - mark_hw[1] - 2 * margin)
        top = margin + fy * (canvas_hw[0] - mark_hw[0] - 2 * margin)
        return round(left), round(top)

    def describe(self) -> str:
        verb = "watermark with" if self.kind == "watermark" else "overlay"
        return (f"{verb} the {ordinal_name(self.source)} image at the {self.position}, "
                f"{format_number(self.size)}% width, opacity {format_number(self.opacity)}%")


# --- blend -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Blend(Operation):
    """Mix ``amount`` % of input ``source`` (stretched to the canvas size) into the
    canvas; its transparent parts mix in less. The canvas keeps its alpha."""

    source: int = 1
    amount: float = 50

    def __post_init__(self) -> None:
        require(0 <= self.amount <= 100, f"a blend of {format_number(self.amount)}% is out of range; use 0–100%.")

    @property
    def images_needed(self) -> int:  # type: ignore[override]
        return images_to_read(self.source)

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        if self.amount == 0:
            return canvas
        color, alpha = split_alpha(canvas)
        other = resized(ctx.inputs[self.source], canvas.shape[1], canvas.shape[0])
        other, other_alpha = split_alpha(other)
        other, color = _same_colour_kind(other, color)
        weight = self.amount / 100
        if other_alpha is not None:
            weight = _coverage(other_alpha, weight)
        mixed, _ = _over(other, weight, color, None)
        return merge_alpha(mixed, alpha)

    def describe(self) -> str:
        return f"blend {format_number(self.amount)}% of the {ordinal_name(self.source)} image"


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
        require(alpha is not None or region is not None,
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
    return resized(image[top:top + crop_h, left:left + crop_w], width, height)


def _swap_region(color: np.ndarray, backdrop: np.ndarray, backdrop_alpha: np.ndarray | None,
                 region: np.ndarray) -> np.ndarray:
    """An opaque canvas with the masked region taken from the backdrop."""
    keep = region.view(np.uint8)
    out = cv2.copyTo(backdrop, keep, color.copy())
    if backdrop_alpha is None:
        return out
    return merge_alpha(out, np.where(region, backdrop_alpha, np.uint8(255)))


# --- phrases ---------------------------------------------------------------------------

# Numbers are atomic (no backtracking into "1111…"): otherwise a long run of digits
# costs time quadratic in its length.
NUM = rf"(?>{NUMBER})"

ALL_IMAGES = (r"(?:them|these|those|both(?:\s+(?:of\s+them|images|pictures|photos))?"
              r"|all(?:\s+of\s+them|\s+(?:the\s+)?(?:images|pictures|photos))?"
              r"|(?:the\s+)?(?:(?:two|three|four|five|six|\d+)\s+)?(?:images|pictures|photos|pics|inputs))")


_LOGO = (r"(?:(?:the|a|an|my)\s+)?(?:logo|watermark|graphic|stamp|overlay|icon|badge|signature|image|"
         r"picture|photo)\s+(?:from|in|of|on)\s+")
_FIRST = r"(?:it|the\s+(?:first\s+)?(?:image|photo|picture))"
_POSITION = (
    r"(?:(?:in|at|on|to|into|onto|over|near|towards?)\s+)?(?:the\s+|a\s+)?"
    r"(?P<pos>(?:top|upper|bottom|lower)[- ]?(?:left|right)(?:[- ]hand)?|top|bottom|left|right|cent(?:er|re)|"
    r"middle|corner)(?:\s+(?:corner|side|edge))?(?:\s+of\s+" + _FIRST + r")?"
)
_SIZE = (
    r"(?:(?:at|with|to|in)\s+)?(?:an?\s+)?(?:(?:size|width|scale)\s+(?:of\s+)?(?P<size>" + NUM + r")\s*(?:%|percent)"
    r"|(?:scaled|sized|resized)\s+(?:down\s+)?to\s+(?P<size2>" + NUM + r")\s*(?:%|percent)"
    r"|(?P<size3>" + NUM + r")\s*(?:%|percent)\s*(?:size|sized|width|wide|scale|big|large"
    r"|of\s+(?:the|its)\s+(?:image\s+)?width|of\s+the\s+(?:first\s+)?image))"
)
_OPACITY = (
    r"(?:(?:at|with|to|in)\s+)?(?:an?\s+)?(?:(?:opacity|alpha)\s+(?:of\s+)?(?P<op>" + NUM + r")\s*(?P<opct>%|percent)?"
    r"|(?P<op2>" + NUM + r")\s*(?:%|percent)\s*(?:opacity|opaque|alpha|visible|visibility|strength)"
    r"|transparency\s+(?:of\s+)?(?P<tr>" + NUM + r")\s*(?:%|percent)?"
    r"|(?P<tr2>" + NUM + r")\s*(?:%|percent)\s*(?:transparency|transparent)"
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
_RATIO = rf"(?P<a>{NUM})\s*%?\s*(?:/|:|(?<=\d)-(?=\d))\s*(?P<b>{NUM})\s*%?(?:\s+(?:ratio|split|mix))?"
_PCT = (rf"(?:(?:at|by|with|to)\s+)?(?:an?\s+)?(?:(?:opacity|strength|weight|ratio|amount)\s+(?:of\s+)?)?"
        rf"(?P<pct>{NUM})\s*(?:%|percent)(?:\s+(?:opacity|strength|weight|mix|blend|ratio))?")
_AMOUNT = (rf"(?:\s+(?:(?:at|in|with)\s+(?:an?\s+)?(?:ratio\s+(?:of\s+)?)?)?{_RATIO}|\s+{_PCT}"
           r"|\s+(?:equally|evenly|half\s+and\s+half|(?:at\s+)?half(?:\s+(?:strength|opacity))?))?")
_BLEND_BOTH = rf"{_MIX}\s+{ALL_IMAGES}(?:\s+together)?{_AMOUNT}"
_BLEND_WITH = (rf"{_MIX}\s+(?:it\s+|{ref('dst')}\s+)?(?:(?:in|with|into|and)\s+)?(?:{_LOGO})?{ref('src')}"
               rf"(?:\s+(?:over|into|onto|with|on|in)\s+(?:{_FIRST}|{ref('dst2')}))?(?:\s+together)?{_AMOUNT}")
_BLEND_SHARE = (rf"{_MIX}\s+(?:in\s+)?(?P<pct>{NUM})\s*(?:%|percent)\s+of\s+(?:{_LOGO})?{ref('src')}"
                rf"(?:\s+(?:into|over|with|onto|in)\s+{_FIRST})?")


def _blend(match) -> Operation:
    source = reference(match, "src") if "srco" in match.re.groupindex else 1
    if "a" in match.re.groupindex and match["a"]:
        first, second = parse_number(match["a"]), parse_number(match["b"])
        require(first >= 0 and second >= 0 and first + second > 0,
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


# Order matters: the first rule to match a span claims it. instructions.py puts
# collage.RULES between these two groups.
BACKGROUND_RULES = (
    rule(_REPLACE_BG, _background),
    rule(_USE_AS_BG, _background),
    rule(_BEHIND, _background),
    rule(_IN_FRONT, _background),
)
LAYER_RULES = (
    rule(_WATERMARK, _overlay("watermark")),
    rule(_AS_MARK, _overlay(None)),
    rule(_OVERLAY, _overlay("overlay")),
    rule(_PLACE_ON, _overlay("overlay")),
    rule(_PLACE_AT, _overlay("overlay")),
    rule(_BLEND_SHARE, _blend),
    rule(_BLEND_WITH, _blend),
    rule(_BLEND_BOTH, _blend),
)
RULES = BACKGROUND_RULES + LAYER_RULES
