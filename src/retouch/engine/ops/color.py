"""Colour and tone operations: grayscale, sepia, invert, brightness, contrast,
saturation, hue, temperature, gamma, equalize, posterize, threshold.

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

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as cv2's RGB2GRAY
_SEPIA_MATRIX = np.array([[0.393, 0.769, 0.189],
                          [0.349, 0.686, 0.168],
                          [0.272, 0.534, 0.131]], dtype=np.float32)
_IDENTITY = np.arange(256, dtype=np.uint8)


# --- helpers ---------------------------------------------------------------------------

def _has_alpha(canvas: np.ndarray) -> bool:
    return canvas.ndim == 3 and canvas.shape[2] == 4


def _restore_alpha(out: np.ndarray, canvas: np.ndarray) -> np.ndarray:
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
    return _restore_alpha(out, canvas)


def _rgb(color: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(color, cv2.COLOR_GRAY2RGB) if color.ndim == 2 else color


def _lut(canvas: np.ndarray, curve: np.ndarray) -> np.ndarray:
    """Apply one 256-entry curve to every colour channel."""
    return _restore_alpha(cv2.LUT(canvas, curve), canvas)


def _mix(canvas: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """out_rgb = matrix @ in_rgb per pixel (saturated to uint8); gray becomes RGB."""
    return _on_color(canvas, lambda color: cv2.transform(_rgb(color), matrix))


def _curve(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _check(name: str, value: float, low: float, high: float, shown: str) -> None:
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


def _pct(value: float) -> str:
    return f"{value:+g}%"


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
        return _restore_alpha(cv2.cvtColor(gray, cv2.COLOR_GRAY2RGBA), canvas)

    def describe(self) -> str:
        return "grayscale"


@dataclass(frozen=True)
class Sepia(Operation):
    """The classic sepia matrix (R ≥ G ≥ B for every pixel); gray becomes RGB."""

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        return _mix(canvas, _SEPIA_MATRIX)

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
class Brightness(Operation):
    """Scale every channel by 1 + percent/100 (Pillow's ``ImageEnhance.Brightness``):
    −100% is black, +100% twice as bright. Allowed: −100% to +400%."""

    percent: float

    def __post_init__(self) -> None:
        _check("brightness", self.percent, -100, 400, _pct(self.percent))

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        if self.percent == 0:
            return canvas
        # alpha ≥ 0, so the "abs" of convertScaleAbs never changes a value.
        return _restore_alpha(cv2.convertScaleAbs(canvas, alpha=1 + self.percent / 100), canvas)

    def describe(self) -> str:
        return f"brightness {_pct(self.percent)}"


@dataclass(frozen=True)
class Contrast(Operation):
    """Spread values away from the mean luma by 1 + percent/100 (Pillow's
    ``ImageEnhance.Contrast``): −100% is flat gray. Allowed: −100% to +400%."""

    percent: float

    def __post_init__(self) -> None:
        _check("contrast", self.percent, -100, 400, _pct(self.percent))

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        if self.percent == 0:
            return canvas
        means = cv2.mean(canvas)
        pivot = means[0] if canvas.ndim == 2 else float(np.dot(_LUMA, means[:3]))
        gain = 1 + self.percent / 100
        out = cv2.addWeighted(canvas, gain, canvas, 0, pivot * (1 - gain))
        return _restore_alpha(out, canvas)

    def describe(self) -> str:
        return f"contrast {_pct(self.percent)}"


@dataclass(frozen=True)
class Saturation(Operation):
    """Move colours away from (or toward) their own gray by 1 + percent/100 (Pillow's
    ``ImageEnhance.Color``): −100% is gray. Gray images are unchanged.
    Allowed: −100% to +400%."""

    percent: float

    def __post_init__(self) -> None:
        _check("saturation", self.percent, -100, 400, _pct(self.percent))

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        if self.percent == 0 or canvas.ndim == 2:
            return canvas
        gain = 1 + self.percent / 100
        # One matrix does "gray + gain·(colour − gray)" for all three channels at once.
        matrix = gain * np.eye(3, dtype=np.float32) + (1 - gain) * np.tile(_LUMA, (3, 1))
        return _mix(canvas, matrix)

    def describe(self) -> str:
        return f"saturation {_pct(self.percent)}"


@dataclass(frozen=True)
class HueShift(Operation):
    """Rotate every hue by ``degrees`` around the HSV colour wheel (in steps of
    360/256°, OpenCV's full-range HSV); gray images are unchanged. Allowed: ±360°."""

    degrees: float

    def __post_init__(self) -> None:
        _check("hue shift", self.degrees, -360, 360, f"{self.degrees:+g}°")

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
class Temperature(Operation):
    """Warmer (percent > 0) or cooler: red × (1 + percent/200), blue × (1 − percent/200).
    Gray becomes RGB. Allowed: −100% to +100%."""

    percent: float

    def __post_init__(self) -> None:
        _check("warmth", self.percent, -100, 100, _pct(self.percent))

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        if self.percent == 0:
            return canvas
        shift = self.percent / 200
        return _mix(canvas, np.diag([1 + shift, 1.0, 1 - shift]).astype(np.float32))

    def describe(self) -> str:
        if self.percent < 0:
            return f"cooler {-self.percent:g}%"
        return f"warmer {self.percent:g}%"


@dataclass(frozen=True)
class Gamma(Operation):
    """out = 255·(in/255)^(1/gamma): above 1 lightens the midtones, below 1 darkens
    them (the ImageMagick/GIMP convention). Allowed: 0.1 to 10."""

    gamma: float

    def __post_init__(self) -> None:
        _check("gamma", self.gamma, 0.1, 10, f"{self.gamma:g}")

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
        _check("posterize levels", self.levels, 2, 256, f"{self.levels:g}")
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
        _check("threshold", self.level, 0, 255, f"{self.level:g}")

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        return _on_color(canvas, self._binarize)

    def _binarize(self, color: np.ndarray) -> np.ndarray:
        gray = color if color.ndim == 2 else cv2.cvtColor(color, cv2.COLOR_RGB2GRAY)
        return cv2.threshold(gray, self.level, 255, cv2.THRESH_BINARY)[1]

    def describe(self) -> str:
        return f"threshold {self.level:g}"


# --- phrases ----------------------------------------------------------------------------

_SOFT = r"slightly|a\s+(?:little\s+)?bit|a\s+little|a\s+tad|a\s+touch|somewhat|mildly|gently|subtly|marginally"
_HARD = (r"much|a\s+lot|lots|way|far|significantly|considerably|strongly|heavily|greatly|dramatically|"
         r"substantially")
_HOW = rf"(?:just\s+)?(?:{_SOFT}|{_HARD})"
_UNIT = r"(?:%|percent\b|per\s*cent\b|pct\b|points?\b|x\b|times\b)"
_OBJ = r"(?:it|everything|(?:the|this|my)\s+(?:image|photo|picture|pic)|image|photo|picture)"
_LEAD = r"(?:\b(?:apply|add|use|give|set|do|run|perform|render)\s+(?:(?:it|me|a|an|the|some)\s+){0,3})?"
_UP = (r"increase|raise|boost|bump(?:\s+up)?|(?:turn|dial|crank|pump|ramp|kick|bring|push)\s+up|crank|push|"
       r"enhance|improve|heighten|amplify|intensify|strengthen|add|up|more|higher|stronger|extra|greater")
_DOWN = (r"decrease|reduce|lower|lessen|cut|(?:turn|tone|dial|bring|take|knock|pull)\s+down|drop|"
         r"diminish|weaken|soften|less|weaker")
_STATE_UP = r"up|higher|increased|boosted|raised"
_STATE_DOWN = r"down|lower|decreased|reduced|lowered"
_ADJUST = r"(?:\b(?:adjust|change|set|modify|alter|tweak|put)\s+)?(?:(?:the|its|overall)\s+){0,2}"
# "by 20%", "to 150%", "by half", "2x", or "a bit" after the phrase.
_TAIL = (rf"(?:\s*(?:(?P<to>to)\s+|by\s+)?(?P<num>{NUMBER})\s*(?P<unit>{_UNIT})?"
         rf"|\s+(?P<how2>{_HOW})\b)?")
_PRE = rf"(?:(?P<how>{_HOW})\s+|(?P<pnum>{NUMBER})\s*(?P<punit>{_UNIT})\s+)?"
_DEGREES = r"\s*(?:degrees?\b|degs?\b|°)?"
_HUE_DIR = r"(?:\s+(?P<dir>clockwise|counter[-\s]?clockwise|anti[-\s]?clockwise|forwards?|backwards?))?"


def _invalid(message: str) -> InvalidRequestError:
    return InvalidRequestError(message, param="prompt", code="invalid_value")


def _strength(how: str | None) -> float:
    """A default step is halved by "slightly" and doubled by "much"."""
    if not how:
        return 1.0
    return 0.5 if re.search(_SOFT, how) else 2.0


def _number(match: re.Match) -> tuple[str | None, str]:
    groups = match.groupdict()
    for num, unit in (("num", "unit"), ("pnum", "punit"), ("qnum", "qunit")):
        if groups.get(num):
            return groups[num], re.sub(r"\s+", "", groups.get(unit) or "")
    return None, ""


def _change(match: re.Match, step: float, absolute: bool = True) -> float:
    """The signed percent change a phrase asks for: a default ``step`` (scaled by
    "slightly"/"much"), "by 20%", "by half", "1.5x", or "to 150%" (a level, when
    ``absolute``); "up"/"down" words set the sign."""
    groups = match.groupdict()
    sign = -1 if groups.get("down") else 1
    text, unit = _number(match)
    if text is None:
        return sign * step * _strength(groups.get("how") or groups.get("how2"))
    value = parse_number(text)
    if unit in ("x", "times"):
        if value <= 0:
            raise _invalid(f"a factor of {value:g}x is not possible: use a factor above 0.")
        if groups.get("down") and value > 1:
            value = 1 / value  # "darker by 2x" halves
        percent = (value - 1) * 100
    else:
        percent = value * 100 if not unit and abs(value) < 1 else value  # "by half", "by 0.2"
    if absolute and groups.get("to") and unit not in ("x", "times"):
        return round(percent - 100, 2)
    if groups.get("up") or groups.get("down"):
        percent = sign * abs(percent)
    return round(percent, 2)


def _adjust_rules(make: Callable[[float], Operation], noun: str, up_words: str, down_words: str,
                  step: float = 20, absolute: bool = True) -> tuple:
    """The phrase rules shared by the signed adjustments (brightness, contrast, …):
    "increase the <noun> by 20%", "20% more <noun>", "<up word> by 20%",
    "<noun> -10%", "<noun> up a bit"."""
    def build(match: re.Match) -> Operation:
        return make(_change(match, step, absolute))

    verb = (rf"{_PRE}\b(?:(?P<up>{_UP})|(?P<down>{_DOWN}))\s+"
            rf"(?:(?P<qnum>{NUMBER})\s*(?P<qunit>{_UNIT})\s+(?:(?:more|less)\s+)?)?"
            rf"(?:(?:the|its|image'?s|photo'?s|overall|some|more|a)\s+){{0,3}}(?:{noun})\b(?:\s+(?:up|down)\b)?{_TAIL}")
    words = rf"{_PRE}\b(?:(?P<up>{up_words})|(?P<down>{down_words}))\b(?:\s+{_OBJ}\b)?{_TAIL}"
    amount = (rf"{_ADJUST}\b(?:{noun})\b(?:\s*[:=])?\s*(?:(?P<up>{_STATE_UP})\s+|(?P<down>{_STATE_DOWN})\s+)?"
              rf"(?:(?P<to>to)\s+|by\s+|of\s+)?(?P<num>{NUMBER})\s*(?P<unit>{_UNIT})?")
    state = (rf"{_ADJUST}\b(?:{noun})\s+(?:(?P<up>{_STATE_UP})|(?P<down>{_STATE_DOWN}))\b"
             rf"(?:\s+(?P<how2>{_HOW})\b)?")
    return tuple(rule(pattern, build) for pattern in (verb, words, amount, state))


def _build_desaturate(match: re.Match) -> Operation:
    if match["half"]:
        return Saturation(-50)
    return Saturation(-abs(_change(match, 20)))


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
        _check("threshold", value, 0, 100, f"{value:g}%")
        value = value * 255 / 100
    elif abs(value) < 1:
        value *= 255  # "threshold at half"
    return Threshold(int(round(value)))


_SATURATED = r"saturated|vivid|vibrant|colou?rful|intense"
_HUE_VERB = (rf"\b(?:shift|rotate|change|adjust|turn|spin|move|cycle|offset|alter)\s+(?:the\s+)?"
             rf"(?:(?:image|photo|picture|colou?r)'?s?\s+)?hues?\b(?:\s+of\s+{_OBJ}\b)?"
             rf"(?:\s*(?:by|of|[:=])?\s*(?P<num>{NUMBER}){_DEGREES})?{_HUE_DIR}")
_HUE_NOUN = (rf"{_LEAD}\bhue(?:[-\s]*(?:shift(?:ed)?|rotation|rotate|offset|change|adjustment))?"
             rf"(?:\s*[:=]|\s+(?:by|of))?\s*(?P<num>{NUMBER}){_DEGREES}{_HUE_DIR}")
_HUE_ALONE = rf"{_LEAD}\bhue[-\s]*(?:shift|rotation)\b(?P<num>)(?P<dir>)"
_EQUALIZE = (rf"{_LEAD}\b(?:auto(?:matic)?[-\s]?(?:contrast|levels?|tone)"
             rf"|(?:histogram\s+)?equali[sz](?:e|ed|ation|ing)(?:\s+(?:the\s+)?(?:histogram|levels|{_OBJ}))?)\b")
_THRESHOLD = (rf"{_LEAD}\b(?:threshold(?:ed|ing)?|binari[sz](?:e|ed|ation)|two[-\s]?tone|(?:1|one)[-\s]?bit|"
              rf"pure\s+black\s+(?:and|&)\s+white|black\s+(?:and|&)\s+white\s+only|"
              rf"only\s+black\s+(?:and|&)\s+white)\b(?:\s+(?:filter|effect|look))?(?:\s+{_OBJ}\b)?"
              rf"(?:\s*(?:at|of|to|with\s+(?:a\s+)?(?:level|value|cutoff)\s+(?:of\s+)?|[:=])?\s*"
              rf"(?P<num>{NUMBER})\s*(?P<pct>%|percent\b)?)?")
_POSTERIZE = (rf"{_LEAD}\bposteri[sz](?:e|ed|ation)\b(?:\s+(?:effect|filter|look))?(?:\s+{_OBJ}\b)?"
              rf"(?:\s*(?:to|with|at|using|into|[:=])?\s*(?P<num>{NUMBER})[-\s]*"
              rf"(?P<unit>levels?|bits?|colou?rs?|tones?|steps?|shades?)?(?:\s+(?:per|each|a)\s+channel)?)?")
_GAMMA = (rf"(?:{_LEAD}|\b(?:change|adjust)\s+(?:the\s+)?)\bgamma(?:[-\s]*(?:correction|correct(?:ed)?|value|curve|"
          rf"adjustment|level))?(?:\s+{_OBJ}\b)?(?:\s*[:=]|\s+(?:of|to|at|with|by))?\s*(?P<num>{NUMBER})")
_SEPIA_PHRASE = rf"{_LEAD}\bsepia(?:[-\s](?:tone[ds]?|filter|effect|look|style|tint|colou?rs?))?\b"
_INVERT = (rf"{_LEAD}\b(?:invert(?:ed)?(?:\s+(?:all\s+)?(?:the\s+)?(?:colou?rs?|image|photo|picture|it))?"
           rf"|(?:colou?r\s+)?inversion|inverse\s+colou?rs|(?:photo(?:graphic)?\s+|colou?r\s+)?negative"
           rf"(?:\s+(?:image|effect|filter|look))?|reverse\s+(?:the\s+)?colou?rs)\b")
_GRAYSCALE = (r"\b(?:gr[ae]y\s*-?\s*scale|black\s*(?:-|and|&)\s*white|b\s*&\s*w|b/w|monochrome|"
              r"desaturated?|(?:remove|drop)\s+(?:all\s+)?(?:the\s+)?colou?rs?)\b")

# Order matters: hue before "invert"/"rotate", auto-contrast before contrast, "pure
# black and white" and "desaturate slightly" before grayscale takes those words.
# "change the hue to 200" (an absolute hue) is left unclaimed rather than read as a shift.
RULES = (
    rule(rf"\b(?:invert|reverse)\s+(?:the\s+)?hues?\b", lambda m: HueShift(180)),
    rule(_HUE_VERB, _hue),
    rule(_HUE_NOUN, _hue),
    rule(_HUE_ALONE, _hue),
    rule(_EQUALIZE, lambda m: Equalize()),
    rule(_THRESHOLD, _build_threshold),
    rule(rf"(?:(?P<how>{_HOW})\s+|(?P<pnum>{NUMBER})\s*(?P<punit>{_UNIT})\s+|(?P<half>partially|partly)\s+)"
         rf"desaturated?\b(?:\s+{_OBJ}\b)?", _build_desaturate),
    rule(rf"\bdesaturate\b(?:\s+{_OBJ}\b)?(?:\s+(?:by\s+)?(?P<num>{NUMBER})\s*(?P<unit>{_UNIT})?"
         rf"|\s+(?P<how2>{_HOW})\b|\s+(?P<half>partially|partly)\b)", _build_desaturate),
    *_adjust_rules(Saturation, r"saturation|vibrance|vibrancy|colou?r\s+saturation|colou?r\s+intensity",
                   rf"saturate|(?:(?:the\s+)?colou?rs\s+)?more\s+(?:{_SATURATED})(?:\s+colou?rs)?|"
                   r"(?:vivid|vibrant|richer|punchier)\s+colou?rs|(?:the\s+)?colou?rs\s+pop|"
                   r"(?:boost|enhance|intensify|enrich)\s+(?:the\s+)?colou?rs",
                   rf"(?:(?:the\s+)?colou?rs\s+)?less\s+(?:{_SATURATED})(?:\s+colou?rs)?|(?:more\s+)?muted"
                   r"(?:\s+colou?rs)?|(?:mute|tone\s+down|dull)\s+(?:the\s+)?colou?rs|undersaturated?"),
    *_adjust_rules(Brightness, r"brightness|exposure|luminosity|lightness",
                   r"brighter|lighter|brighten(?:ed)?|lighten(?:ed)?|more\s+bright|less\s+dark",
                   r"darker|darken(?:ed)?|dimmer|dim|less\s+bright|more\s+dark"),
    *_adjust_rules(Contrast, r"contrast",
                   r"contrastier|punchier|more\s+contrasty|high[-\s]contrast",
                   r"flatter|less\s+contrasty|low[-\s]contrast"),
    *_adjust_rules(Temperature, r"(?:colou?r\s+)?temperature|warmth",
                   rf"warmer(?:\s+(?:colou?rs|tones?|look|feel|tint))?|warm\s+(?:{_OBJ}\s+)?up|"
                   r"warm\s+(?:colou?rs|tones?|look|feel|tint|filter)",
                   rf"cooler(?:\s+(?:colou?rs|tones?|look|feel|tint))?|colder|cool\s+(?:{_OBJ}\s+)?down|"
                   r"cool\s+(?:colou?rs|tones?|look|feel|tint|filter)", absolute=False),
    rule(_GAMMA, lambda m: Gamma(parse_number(m["num"]))),
    rule(_POSTERIZE, _build_posterize),
    rule(_SEPIA_PHRASE, lambda m: Sepia()),
    rule(_INVERT, lambda m: Invert()),
    rule(_GRAYSCALE, lambda m: Grayscale()),
)
