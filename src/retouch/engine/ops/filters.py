"""Filters: blur, sharpen, denoise, pixelate, vignette, emboss, edges, detail enhance.

Every filter keeps the canvas size and its alpha channel. Emboss and edge detection
return gray (RGB + alpha when the canvas has alpha); detail enhance works on RGB, so gray
canvases come back RGB. The painterly looks (cartoon, pencil sketch, watercolour, oil
painting) are in looks.py, on the helpers and phrases here.

Cost at 4096×4096 (16 MP) on two cores: blur radius 10 ≈ 0.35 s (radius 50, the cap,
≈ 4 s), sharpen, pixelate, vignette, emboss and edges ≤ 0.15 s, denoise ≈ 0.35 s.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np

from retouch.engine.ops import Context, Operation, merge_alpha, split_alpha
from retouch.engine.phrases import NUMBER, parse_number, rule
from retouch.errors import InvalidRequestError


def check_range(what: str, value: float, low: float, high: float, unit: str = "") -> None:
    """Raise a 400 naming ``what``, ``value`` and the allowed range unless low ≤ value ≤ high."""
    if not low <= value <= high:
        raise InvalidRequestError(
            f"{what} {value:g}{unit} is out of range: ask for {low:g}{unit} to {high:g}{unit}.",
            param="prompt", code="invalid_value")


Filter = Callable[[np.ndarray], np.ndarray]


def on_color(canvas: np.ndarray, filter_color: Filter) -> np.ndarray:
    """``filter_color`` applied to the gray or RGB part; alpha comes back untouched."""
    color, alpha = split_alpha(canvas)
    if alpha is None:
        return filter_color(canvas)
    return merge_alpha(filter_color(np.ascontiguousarray(color)), alpha)


def on_rgb(canvas: np.ndarray, filter_rgb: Filter) -> np.ndarray:
    """``filter_rgb`` applied to the canvas as HxWx3 RGB (gray is expanded); alpha kept."""
    color, alpha = split_alpha(canvas)
    rgb = cv2.cvtColor(color, cv2.COLOR_GRAY2RGB) if color.ndim == 2 else np.ascontiguousarray(color)
    return merge_alpha(filter_rgb(rgb), alpha)


def at_work_size(rgb: np.ndarray, filter_rgb: Filter, max_pixels: int) -> np.ndarray:
    """``filter_rgb`` run on a copy of at most ``max_pixels``, scaled back to full size."""
    height, width = rgb.shape[:2]
    if height * width <= max_pixels:
        return filter_rgb(rgb)
    filtered = filter_rgb(shrink_to(rgb, max_pixels))
    return cv2.resize(filtered, (width, height), interpolation=cv2.INTER_LINEAR)


def shrink_to(rgb: np.ndarray, max_pixels: int) -> np.ndarray:
    """``rgb`` itself if it has at most ``max_pixels``, else a smaller copy (same aspect)."""
    height, width = rgb.shape[:2]
    if height * width <= max_pixels:
        return rgb
    factor = (max_pixels / (height * width)) ** 0.5
    size = (max(1, int(width * factor)), max(1, int(height * factor)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class Blur(Operation):
    """Gaussian blur; ``radius`` is the standard deviation in pixels (as in Pillow's
    ``GaussianBlur``). Capped at 50 px: the cost grows with the radius."""

    radius: float = 3.0

    def __post_init__(self) -> None:
        check_range("Blur radius", self.radius, 0.1, 50, " px")

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        return on_color(canvas, lambda color: cv2.GaussianBlur(color, (0, 0), self.radius))

    def describe(self) -> str:
        return f"blur radius {self.radius:g}"


@dataclass(frozen=True)
class Sharpen(Operation):
    """Unsharp mask: add ``amount`` (1.0 = 100%) times the difference between the image
    and its Gaussian blur of ``radius`` px."""

    amount: float = 1.0
    radius: float = 1.5

    def __post_init__(self) -> None:
        check_range("Sharpen amount", self.amount * 100, 1, 500, "%")

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        def sharpen(color: np.ndarray) -> np.ndarray:
            blurred = cv2.GaussianBlur(color, (0, 0), self.radius)
            # Written over the blur: one image-sized buffer instead of two.
            return cv2.addWeighted(color, 1 + self.amount, blurred, -self.amount, 0, dst=blurred)
        return on_color(canvas, sharpen)

    def describe(self) -> str:
        return f"sharpen {self.amount * 100:g}% (radius {self.radius:g})"


@dataclass(frozen=True)
class Denoise(Operation):
    """Edge-preserving smoothing with a 5-px bilateral filter; ``strength`` is how far
    apart (in 0–255 levels) two colours may be and still be averaged.

    Not ``cv2.fastNlMeansDenoisingColored``: that takes over 20 s at 16 MP on two cores
    (and did no better on film-like grain in our checks); this takes ≈ 0.3 s."""

    strength: float = 35

    def __post_init__(self) -> None:
        check_range("Denoise strength", self.strength, 1, 100)

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        return on_color(canvas, lambda color: cv2.bilateralFilter(color, 5, self.strength, 5))

    def describe(self) -> str:
        return f"denoise strength {self.strength:g}"


@dataclass(frozen=True)
class Pixelate(Operation):
    """``block``×``block`` squares of one colour (the mean of the pixels they cover),
    aligned to the top-left corner; squares on the right and bottom edges may be cut."""

    block: int = 8

    def __post_init__(self) -> None:
        check_range("Pixelate block size", self.block, 2, 1024, " px")

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        return on_color(canvas, lambda color: pixelate(color, self.block))

    def describe(self) -> str:
        return f"pixelate {self.block}px blocks"


def pixelate(color: np.ndarray, block: int) -> np.ndarray:
    """Mean of each block×block square, repeated over the square."""
    height, width = color.shape[:2]
    rows, cols = -(-height // block), -(-width // block)
    if (rows * block, cols * block) != (height, width):
        # Whole squares keep INTER_AREA an exact box mean; a cut square at the edge is
        # padded with copies of its edge pixels, so its mean leans toward them.
        color = cv2.copyMakeBorder(color, 0, rows * block - height, 0, cols * block - width,
                                   cv2.BORDER_REPLICATE)
    small = cv2.resize(color, (cols, rows), interpolation=cv2.INTER_AREA)
    blocky = cv2.resize(small, (cols * block, rows * block), interpolation=cv2.INTER_NEAREST)
    return blocky[:height, :width]


@dataclass(frozen=True)
class Vignette(Operation):
    """Darken towards the corners: the centre is untouched, the corners are darkened by
    ``strength`` (0.5 = half as bright), following the image's aspect ratio."""

    strength: float = 0.5
    _STRIP: ClassVar[int] = 256  # rows at a time, so the gain never exists at full size

    def __post_init__(self) -> None:
        check_range("Vignette strength", self.strength * 100, 1, 100, "%")

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        return on_color(canvas, self._darken)

    def _darken(self, color: np.ndarray) -> np.ndarray:
        height, width = color.shape[:2]
        down, across = squared_offsets(height), squared_offsets(width)
        out = np.empty_like(color)
        for top in range(0, height, self._STRIP):
            rows = slice(top, top + self._STRIP)
            gain = vignette_gain(down[rows], across, self.strength)
            if color.ndim == 3:
                gain = cv2.merge([gain] * color.shape[2])
            out[rows] = cv2.multiply(color[rows], gain, scale=1 / 255)
        return out

    def describe(self) -> str:
        return f"vignette {self.strength * 100:g}%"


def squared_offsets(length: int) -> np.ndarray:
    """(distance from the centre / half the length)² for each pixel along one side."""
    centre = (length - 1) / 2
    return np.square((np.arange(length, dtype=np.float32) - centre) / max(centre, 0.5))


def vignette_gain(down: np.ndarray, across: np.ndarray, strength: float) -> np.ndarray:
    """uint8 gain (255 = unchanged) for rows at squared offsets ``down``: 1 − strength·d²,
    d = 0 at the centre and 1 in the corners."""
    reach = (down[:, None] + across[None, :]) * 0.5
    return np.rint(255 * (1 - strength * reach)).astype(np.uint8)


@dataclass(frozen=True)
class Emboss(Operation):
    """Gray relief: the luma's diagonal gradient around mid-gray (flat areas become 128).
    The result is gray (RGB + alpha when the canvas has alpha)."""

    _KERNEL: ClassVar[np.ndarray] = np.array([[-1, -1, 0], [-1, 0, 1], [0, 1, 1]], dtype=np.float32)

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        return on_color(canvas, lambda color: cv2.filter2D(luma(color), -1, self._KERNEL, delta=128))

    def describe(self) -> str:
        return "emboss"


@dataclass(frozen=True)
class DetectEdges(Operation):
    """Canny edges of the luma (thresholds 100 and 200): white lines on black. The
    result is gray (RGB + alpha when the canvas has alpha)."""

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        return on_color(canvas, lambda color: cv2.Canny(luma(color), 100, 200))

    def describe(self) -> str:
        return "edge detection (Canny)"


def luma(color: np.ndarray) -> np.ndarray:
    return color if color.ndim == 2 else cv2.cvtColor(color, cv2.COLOR_RGB2GRAY)


@dataclass(frozen=True)
class DetailEnhance(Operation):
    """``cv2.detailEnhance`` (local contrast boosted, edges kept). Above 1 MP the boost is
    computed on a scaled-down copy, then scaled up and added to the full-size image, so
    the finest detail is kept, not boosted (16 MP: ≈ 0.5 s and 2× the image in
    temporaries, instead of ≈ 6.5 s and over 8×). The boost is held as uint8 around 128:
    changes beyond ±127 levels (rare) are cut."""

    work_pixels: ClassVar[int] = 1_000_000

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        return on_rgb(canvas, self._enhance)

    def _enhance(self, rgb: np.ndarray) -> np.ndarray:
        height, width = rgb.shape[:2]
        if height * width <= self.work_pixels:
            return enhance_detail(rgb)
        small = shrink_to(rgb, self.work_pixels)
        boost = cv2.addWeighted(enhance_detail(small), 1, small, -1, 128)
        boost = cv2.resize(boost, (width, height), interpolation=cv2.INTER_LINEAR)
        return cv2.addWeighted(rgb, 1, boost, 1, -128)

    def describe(self) -> str:
        return "detail enhance"


def enhance_detail(rgb: np.ndarray) -> np.ndarray:
    # detailEnhance reads BGR (it works in L*a*b*).
    bgr = cv2.detailEnhance(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), sigma_s=10, sigma_r=0.15)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


# --- phrases -------------------------------------------------------------------------

_VERY = r"(?:(?:very|really|super|extra|quite|pretty)\s+)?"
_LOW = (r"(?:slight(?:ly)?|subtle|subtly|light(?:ly)?|gentle|gently|soft|mild(?:ly)?|weak|"
        r"a\s+(?:tiny\s+|little\s+)?bit(?:\s+of)?|a\s+little|a\s+touch(?:\s+of)?|little|tiny)")
_HIGH = (r"(?:heavy|heavily|strong(?:ly)?|intense(?:ly)?|extreme(?:ly)?|a\s+lot(?:\s+of)?|lots\s+of|"
         r"massive(?:ly)?|big|hard|serious(?:ly)?|much|dramatic(?:ally)?|more)")
_LEVEL = rf"{_VERY}(?:{_LOW}|{_HIGH})(?:\s+more)?"
_THE_IMAGE = r"(?:\s+(?:it|the\s+(?:image|picture|photo)|the\s+whole\s+(?:image|thing)))?"
_APPLY = (r"(?:(?:add|apply|use|run|do|give\s+(?:it|the\s+image)|turn\s+(?:it\s+)?(?:into)?|"
          r"transform\s+(?:it\s+)?(?:into)?|look\s+like|look|as|with|in\s+(?:the\s+)?style\s+of|in)\s+)?"
          r"(?:an?\s+|the\s+|some\s+)?")
_LOOK = r"(?:\s+(?:effect|filter|style|look|version|image|picture|photo))?"


def level(match: re.Match, low: float, default: float, high: float) -> float:
    """The amount the words in groups ``lvl``/``lvl2`` ask for: low, default or high."""
    words = " ".join(filter(None, (match.groupdict().get(g) for g in ("lvl", "lvl2"))))
    if re.search(_LOW, words):  # first: "a bit more" is a little
        return low
    return high if re.search(_HIGH, words) else default


def effect_phrase(core: str) -> str:
    """``core`` with the usual wrappers: "apply a … effect", "make it look like a …"."""
    return rf"\b{_APPLY}(?:{core}){_LOOK}\b"


def _build_blur(match: re.Match) -> Operation:
    amount = match["px"] or match["px0"]
    if amount:
        return Blur(parse_number(amount))
    return Blur(level(match, 1, 1 if match["soft"] else 3, 10))  # "soften" asks for a little


def _build_sharpen(match: re.Match) -> Operation:
    if match["pct"]:
        return Sharpen(parse_number(match["pct"]) / 100)
    return Sharpen(level(match, 0.5, 1.0, 2.0))


def _build_denoise(match: re.Match) -> Operation:
    return Denoise(parse_number(match["num"]) if match["num"] else level(match, 20, 35, 60))


def _build_pixelate(match: re.Match) -> Operation:
    amount = match["px"] or match["px0"]
    return Pixelate(round(parse_number(amount)) if amount else 8)


def _build_vignette(match: re.Match) -> Operation:
    if match["pct"]:
        return Vignette(parse_number(match["pct"]) / 100)
    return Vignette(level(match, 0.3, 0.5, 0.8))


_PX = r"\s*(?:px|pixels?)"
_BLUR = (
    rf"\b(?:(?:add|apply|use|give\s+it)\s+)?(?:an?\s+|some\s+)?(?:(?P<lvl>{_LEVEL})\s+)?"
    rf"(?:(?P<px0>{NUMBER}){_PX}\s*-?\s*)?(?:gaussian\s+)?"
    rf"(?:blur(?:red|ry|rier)?|defocus(?:ed)?|out\s+of\s+focus|(?P<soft>soften))\b{_THE_IMAGE}"
    rf"(?:\s+(?P<lvl2>{_LEVEL}))?"
    rf"(?:\s*(?:(?:by|with|of|at|to)\s+)?(?:an?\s+)?(?:radius\s+(?:of\s+)?)?"
    rf"(?P<px>{NUMBER})(?:{_PX})?(?:\s+radius)?)?"
)
_SHARPEN = (
    rf"\b(?:(?P<lvl>{_LEVEL})\s+)?(?:sharpen|sharper|crisper|unsharp\s+mask|less\s+blurry|de-?blur|unblur|"
    rf"(?:(?:increase|boost|add|more)\s+(?:the\s+)?)sharpness)\b{_THE_IMAGE}"
    rf"(?:\s+(?P<lvl2>{_LEVEL}))?(?:\s*(?:by\s+|to\s+|with\s+|at\s+)?(?:amount\s+)?(?P<pct>{NUMBER})\s*(?:%|percent))?"
)
_DENOISE = (
    rf"\b(?:(?P<lvl>{_LEVEL})\s+)?(?:de-?noise|(?:remove|reduce|cut|clean\s+up|get\s+rid\s+of|less|"
    rf"suppress|lower|smooth(?:\s+out)?)\s+(?:the\s+|some\s+|all\s+(?:the\s+)?)?(?:image\s+)?(?:noise|grain|graininess)|"
    rf"noise\s+reduction|less\s+(?:noisy|grainy)|de-?grain)\b{_THE_IMAGE}(?:\s+(?P<lvl2>{_LEVEL}))?"
    rf"(?:\s*(?:with\s+|at\s+)?(?:(?:a\s+)?strength\s+(?:of\s+)?)?(?P<num>{NUMBER})\s*%?)?"
)
_PIXELATE = (
    rf"\b{_APPLY}(?:(?P<px0>{NUMBER}){_PX}\s*-?\s*)?(?:pixel(?:ate|ise|ize)d?|pixel\s*art|pixelation|"
    rf"mosaic)\b{_LOOK}{_THE_IMAGE}"
    rf"(?:\s*(?:with|using|into|in|to|at|by)?\s*(?:(?:an?\s+)?block\s+size\s+(?:of\s+)?)?"
    rf"(?P<px>{NUMBER})(?:{_PX})?(?:\s*-?\s*(?:blocks?|squares?|cells?|pixel\s+blocks?))?)?"
)
_VIGNETTE = (
    rf"\b(?:(?:add|apply|give\s+it|with)\s+)?(?:an?\s+|the\s+)?(?:(?P<lvl>{_LEVEL})\s+)?"
    rf"(?:vignett(?:e|ing)|darken\s+(?:the\s+)?(?:corners|edges))\b(?:\s+(?P<lvl2>{_LEVEL}))?"
    rf"(?:\s*(?:effect\s+)?(?:of\s+|at\s+|by\s+)?(?:strength\s+)?(?P<pct>{NUMBER})\s*(?:%|percent))?"
)
_EDGES = (
    rf"\b(?:(?:detect|find|show|highlight|trace|extract|draw)\s+(?:only\s+)?(?:the\s+|all\s+(?:the\s+)?)?"
    rf"(?:edges|outlines)(?:\s+only)?|{_APPLY}(?:edges?\s+(?:detection|detect(?:or)?|only|map|filter|effect)|"
    rf"canny(?:\s+edges?)?(?:\s+(?:detection|filter))?))\b"
    # "outline" alone, but not "add an outline" (a stroke around the subject, not edges).
    rf"|(?<!add )(?<!add a )(?<!add an )\boutlines?(?:\s+(?:only|effect|filter|drawing))?\b"
)
_DETAIL = (r"\b(?:(?:enhance|boost|bring\s+out|sharpen\s+up|increase|more|add\s+more|pull\s+out)\s+"
           r"(?:the\s+|all\s+(?:the\s+)?|some\s+)?(?:fine\s+)?details?|detail\s+enhance(?:ment|r)?)\b")

RULES = (
    rule(_DETAIL, lambda m: DetailEnhance()),  # before sharpen: "sharpen up the details"
    rule(_SHARPEN, _build_sharpen),
    rule(_BLUR, _build_blur),
    rule(_DENOISE, _build_denoise),
    rule(_PIXELATE, _build_pixelate),
    rule(_VIGNETTE, _build_vignette),
    rule(effect_phrase(r"emboss(?:ed|ing)?|relief"), lambda m: Emboss()),
    rule(_EDGES, lambda m: DetectEdges()),
)
