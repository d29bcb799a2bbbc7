"""Colour and tone maps: grayscale, sepia, invert, hue, gamma, equalize, posterize,
threshold. The signed adjustments (brightness, contrast, saturation, warmth) are in
adjustments.py and share the pixel helpers here.

Every operation keeps alpha. Tone curves that are one multiply-add run as a single
OpenCV arithmetic call, other curves as ``cv2.LUT``, and colour mixes as one
``cv2.transform`` — each one pass over the pixels, with no float copy of the image.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from retouch.engine.ops import Context, Operation
from retouch.engine.phrases import NUMBER, parse_number, rule
from retouch.errors import InvalidRequestError

_SEPIA_MATRIX = np.array([[0.393, 0.769, 0.189],
                          [0.349, 0.686, 0.168],
                          [0.272, 0.534, 0.131]], dtype=np.float32)
_IDENTITY = np.arange(256, dtype=np.uint8)


# --- helpers ---------------------------------------------------------------------------

def _has_alpha(canvas: np.ndarray) -> bool:
    return canvas.ndim == 3 and canvas.shape[2] == 4


def restore_alpha(out: np.ndarray, canvas: np.ndarray) -> np.ndarray:
    """Copy the alpha of ``canvas`` into ``out`` (for calls that touched all 4 channels)."""
    if _has_alpha(canvas):
        cv2.mixChannels([canvas], [out], [3, 3])
    return out


def _on_color(canvas: np.ndarray, edit: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Run ``edit`` on the colour part and put the alpha back.

    cvtColor copies are used because OpenCV's 4-channel paths for transform and
    colour conversions are several times slower than dropping alpha and adding it back."""
    if not _has_alpha(canvas):
        return edit(canvas)
    edited = edit(cv2.cvtColor(canvas, cv2.COLOR_RGBA2RGB))
    out = cv2.cvtColor(edited, cv2.COLOR_GRAY2RGBA if edited.ndim == 2 else cv2.COLOR_RGB2RGBA)
    return restore_alpha(out, canvas)


def _rgb(color: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(color, cv2.COLOR_GRAY2RGB) if color.ndim == 2 else color


def _lut(canvas: np.ndarray, curve: np.ndarray) -> np.ndarray:
    """Apply one 256-entry curve to every colour channel."""
    return restore_alpha(cv2.LUT(canvas, curve), canvas)


def mix(canvas: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """out_rgb = matrix @ in_rgb per pixel (saturated to uint8); gray becomes RGB."""
    return _on_color(canvas, lambda color: cv2.transform(_rgb(color), matrix))


def _curve(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def check_amount(name: str, value: float, low: float, high: float, shown: str) -> None:
    """Raise a 400 naming ``value`` and the allowed range unless low <= value <= high."""
    if not low <= value <= high:
        raise InvalidRequestError(f"{name} {shown} is out of range: use {name} between "
                                  f"{_show(low, shown)} and {_show(high, shown)}.",
                                  param="prompt", code="invalid_value")


def _show(value: float, like: str) -> str:
    """Format a range end the way the offending value was shown (sign, unit)."""
    sign = "+" if like[:1] in "+-" else ""
    unit = "%" if like.endswith("%") else "°" if like.endswith("°") else ""
    return f"{value:{sign}g}{unit}"


# --- operations -------------------------------------------------------------------------

@dataclass(frozen=True)
class Grayscale(Operation):
    """Luma (ITU-R 601). Opaque images become one channel (R=G=B once decoded);
    transparent ones keep their alpha."""

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        if canvas.ndim == 2:
            return canvas
        if not _has_alpha(canvas):
            return cv2.cvtColor(canvas, cv2.COLOR_RGB2GRAY)
        gray = cv2.cvtColor(canvas, cv2.COLOR_RGBA2GRAY)
        return restore_alpha(cv2.cvtColor(gray, cv2.COLOR_GRAY2RGBA), canvas)

    def describe(self) -> str:
        return "grayscale"


@dataclass(frozen=True)
class Sepia(Operation):
    """The classic sepia matrix (R ≥ G ≥ B for every pixel); gray becomes RGB."""

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        return mix(canvas, _SEPIA_MATRIX)

    def describe(self) -> str:
        return "sepia"


@dataclass(frozen=True)
class Invert(Operation):
    """The negative: every colour channel becomes 255 − value."""

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        if _has_alpha(canvas):
            return cv2.bitwise_xor(canvas, (255, 255, 255, 0))
        return cv2.bitwise_not(canvas)

    def describe(self) -> str:
        return "invert colours"



@dataclass(frozen=True)
class HueShift(Operation):
    """Rotate every hue by ``degrees`` around the HSV colour wheel (in steps of
    360/256°, OpenCV's full-range HSV); gray images are unchanged. Allowed: ±360°."""

    degrees: float

    def __post_init__(self) -> None:
        check_amount("hue shift", self.degrees, -360, 360, f"{self.degrees:+g}°")

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        step = round(self.degrees * 256 / 360) % 256
        if step == 0 or canvas.ndim == 2:
            return canvas
        return _on_color(canvas, lambda color: _shift_hue(color, step))

    def describe(self) -> str:
        return f"hue shift {self.degrees:+g}°"


def _shift_hue(rgb: np.ndarray, step: int) -> np.ndarray:
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV_FULL)
    hsv[..., 0] += np.uint8(step)  # uint8 wraps around: exactly the colour wheel
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL)



@dataclass(frozen=True)
class Gamma(Operation):
    """out = 255·(in/255)^(1/gamma): above 1 lightens the midtones, below 1 darkens
    them (the ImageMagick/GIMP convention). Allowed: 0.1 to 10."""

    gamma: float

    def __post_init__(self) -> None:
        check_amount("gamma", self.gamma, 0.1, 10, f"{self.gamma:g}")

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        if self.gamma == 1:
            return canvas
        return _lut(canvas, _gamma_curve(self.gamma))

    def describe(self) -> str:
        return f"gamma {self.gamma:g}"


# Curves are cached: building one costs about a tenth of applying it to a megapixel.
@lru_cache(maxsize=32)
def _gamma_curve(gamma: float) -> np.ndarray:
    return _curve(255 * (_IDENTITY / 255) ** (1 / gamma))


@lru_cache(maxsize=32)
def _posterize_curve(levels: int) -> np.ndarray:
    bucket = _IDENTITY.astype(np.int32) * levels // 256
    return _curve(bucket * 255 / (levels - 1))


@dataclass(frozen=True)
class Equalize(Operation):
    """Histogram equalisation of the luma (YCrCb Y) only, so hues do not shift."""

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        if canvas.ndim == 2:
            return cv2.equalizeHist(canvas)
        return _on_color(canvas, _equalize_luma)

    def describe(self) -> str:
        return "equalize histogram"


def _equalize_luma(rgb: np.ndarray) -> np.ndarray:
    ycc = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
    ycc[..., 0] = cv2.equalizeHist(np.ascontiguousarray(ycc[..., 0]))
    return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)


@dataclass(frozen=True)
class Posterize(Operation):
    """``levels`` evenly spaced values per channel, from 0 to 255. Allowed: 2 to 256."""

    levels: int = 4

    def __post_init__(self) -> None:
        check_amount("posterize levels", self.levels, 2, 256, f"{self.levels:g}")
        if self.levels != int(self.levels):
            raise InvalidRequestError(f"posterize levels {self.levels:g} is not a whole number: "
                                      "use 2 to 256 levels.", param="prompt", code="invalid_value")

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        if self.levels >= 256:
            return canvas
        return _lut(canvas, _posterize_curve(int(self.levels)))

    def describe(self) -> str:
        return f"posterize {self.levels:g} levels"


@dataclass(frozen=True)
class Threshold(Operation):
    """Pure black and white: luma above ``level`` becomes white, the rest black.
    Opaque images become one channel (like grayscale). Allowed: 0 to 255."""

    level: float = 128

    def __post_init__(self) -> None:
        check_amount("threshold", self.level, 0, 255, f"{self.level:g}")

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        return _on_color(canvas, self._binarize)

    def _binarize(self, color: np.ndarray) -> np.ndarray:
        gray = color if color.ndim == 2 else cv2.cvtColor(color, cv2.COLOR_RGB2GRAY)
        return cv2.threshold(gray, self.level, 255, cv2.THRESH_BINARY)[1]

    def describe(self) -> str:
        return f"threshold {self.level:g}"


# --- phrases ----------------------------------------------------------------------------

# The image as the object of a verb ("brighten it", "invert the photo"); adjustments.py
# uses it too.
OBJECT = r"(?:it|everything|(?:the|this|my)\s+(?:image|photo|picture|pic)|image|photo|picture)"
_LEAD = r"(?:\b(?:apply|add|use|give|set|do|run|perform|render)\s+(?:(?:it|me|a|an|the|some)\s+){0,3})?"
_DEGREES = r"\s*(?:degrees?\b|degs?\b|°)?"
_HUE_DIR = r"(?:\s+(?P<dir>clockwise|counter[-\s]?clockwise|anti[-\s]?clockwise|forwards?|backwards?))?"


def _invalid(message: str) -> InvalidRequestError:
    return InvalidRequestError(message, param="prompt", code="invalid_value")


def _hue(match: re.Match) -> Operation:
    degrees = parse_number(match["num"]) if match["num"] else 30
    backwards = (match["dir"] or "").startswith(("counter", "anti", "back"))
    return HueShift(-abs(degrees) if backwards else degrees)


def _build_posterize(match: re.Match) -> Operation:
    if not match["num"]:
        return Posterize()
    value = parse_number(match["num"])
    if (match["unit"] or "").startswith("bit"):
        if value not in range(1, 9):
            raise _invalid(f"posterize {value:g} bits is out of range: use 1 to 8 bits per channel.")
        return Posterize(2 ** int(value))
    return Posterize(int(value) if value == int(value) else value)


def _build_threshold(match: re.Match) -> Operation:
    if not match["num"]:
        return Threshold()
    value = parse_number(match["num"])
    if match["pct"]:
        check_amount("threshold", value, 0, 100, f"{value:g}%")
        value = value * 255 / 100
    elif abs(value) < 1:
        value *= 255  # "threshold at half"
    return Threshold(int(round(value)))


_HUE_VERB = (rf"\b(?:shift|rotate|change|adjust|turn|spin|move|cycle|offset|alter)\s+(?:the\s+)?"
             rf"(?:(?:image|photo|picture|colou?r)'?s?\s+)?hues?\b(?:\s+of\s+{OBJECT}\b)?"
             rf"(?:\s*(?:by|of|[:=])?\s*(?P<num>{NUMBER}){_DEGREES})?{_HUE_DIR}")
_HUE_NOUN = (rf"{_LEAD}\bhue(?:[-\s]*(?:shift(?:ed)?|rotation|rotate|offset|change|adjustment))?"
             rf"(?:\s*[:=]|\s+(?:by|of))?\s*(?P<num>{NUMBER}){_DEGREES}{_HUE_DIR}")
_HUE_ALONE = rf"{_LEAD}\bhue[-\s]*(?:shift|rotation)\b(?P<num>)(?P<dir>)"
_EQUALIZE = (rf"{_LEAD}\b(?:auto(?:matic)?[-\s]?(?:contrast|levels?|tone)"
             rf"|(?:histogram\s+)?equali[sz](?:e|ed|ation|ing)(?:\s+(?:the\s+)?(?:histogram|levels|{OBJECT}))?)\b")
_THRESHOLD = (rf"{_LEAD}\b(?:threshold(?:ed|ing)?|binari[sz](?:e|ed|ation)|two[-\s]?tone|(?:1|one)[-\s]?bit|"
              rf"pure\s+black\s+(?:and|&)\s+white|black\s+(?:and|&)\s+white\s+only|"
              rf"only\s+black\s+(?:and|&)\s+white)\b(?:\s+(?:filter|effect|look))?(?:\s+{OBJECT}\b)?"
              rf"(?:\s*(?:at|of|to|with\s+(?:a\s+)?(?:level|value|cutoff)\s+(?:of\s+)?|[:=])?\s*"
              rf"(?P<num>{NUMBER})\s*(?P<pct>%|percent\b)?)?")
_POSTERIZE = (rf"{_LEAD}\bposteri[sz](?:e|ed|ation)\b(?:\s+(?:effect|filter|look))?(?:\s+{OBJECT}\b)?"
              rf"(?:\s*(?:to|with|at|using|into|[:=])?\s*(?P<num>{NUMBER})[-\s]*"
              rf"(?P<unit>levels?|bits?|colou?rs?|tones?|steps?|shades?)?(?:\s+(?:per|each|a)\s+channel)?)?")
_GAMMA = (rf"(?:{_LEAD}|\b(?:change|adjust)\s+(?:the\s+)?)\bgamma(?:[-\s]*(?:correction|correct(?:ed)?|value|curve|"
          rf"adjustment|level))?(?:\s+{OBJECT}\b)?(?:\s*[:=]|\s+(?:of|to|at|with|by))?\s*(?P<num>{NUMBER})")
_SEPIA_PHRASE = rf"{_LEAD}\bsepia(?:[-\s](?:tone[ds]?|filter|effect|look|style|tint|colou?rs?))?\b"
_INVERT = (rf"{_LEAD}\b(?:invert(?:ed)?(?:\s+(?:all\s+)?(?:the\s+)?(?:colou?rs?|image|photo|picture|it))?"
           rf"|(?:colou?r\s+)?inversion|inverse\s+colou?rs|(?:photo(?:graphic)?\s+|colou?r\s+)?negative"
           rf"(?:\s+(?:image|effect|filter|look))?|reverse\s+(?:the\s+)?colou?rs)\b")
_GRAYSCALE = (r"\b(?:gr[ae]y\s*-?\s*scale|black\s*(?:-|and|&)\s*white|b\s*&\s*w|b/w|monochrome|"
              r"desaturated?|(?:remove|drop)\s+(?:all\s+)?(?:the\s+)?colou?rs?)\b")


# Order matters: the first rule to match a span claims it. Hue before "invert"/"rotate",
# auto-contrast before contrast, "pure black and white" and "desaturate slightly" before
# grayscale takes those words, so instructions.py puts adjustments.RULES (contrast,
# desaturate, …) between these two groups. "change the hue to 200" (an absolute hue) is
# left unclaimed rather than read as a shift.
EARLY_RULES = (
    rule(r"\b(?:invert|reverse)\s+(?:the\s+)?hues?\b", lambda m: HueShift(180)),
    rule(_HUE_VERB, _hue),
    rule(_HUE_NOUN, _hue),
    rule(_HUE_ALONE, _hue),
    rule(_EQUALIZE, lambda m: Equalize()),
    rule(_THRESHOLD, _build_threshold),
)
LATE_RULES = (
    rule(_GAMMA, lambda m: Gamma(parse_number(m["num"]))),
    rule(_POSTERIZE, _build_posterize),
    rule(_SEPIA_PHRASE, lambda m: Sepia()),
    rule(_INVERT, lambda m: Invert()),
    rule(_GRAYSCALE, lambda m: Grayscale()),
)
RULES = EARLY_RULES + LATE_RULES
