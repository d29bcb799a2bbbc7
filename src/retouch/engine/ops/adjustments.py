"""Adjustments: brightness, contrast, saturation and warmth, each a signed percent change.

Their phrases share one grammar: "increase the contrast by 20%", "20% more saturation",
"a bit brighter", "brightness -10%", "contrast up a lot", "darker by 2x". Like the
colour maps in color.py (whose helpers they use), they keep alpha and make one pass over
the pixels.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from retouch.engine.ops import Context, Operation
from retouch.engine.ops.color import OBJECT, check_amount, mix, restore_alpha
from retouch.engine.phrases import NUMBER, parse_number, rule
from retouch.errors import InvalidRequestError

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as cv2's RGB2GRAY


def _pct(value: float) -> str:
    return f"{value:+g}%"


@dataclass(frozen=True)
class Brightness(Operation):
    """Scale every channel by 1 + percent/100 (Pillow's ``ImageEnhance.Brightness``):
    −100% is black, +100% twice as bright. Allowed: −100% to +400%."""

    percent: float

    def __post_init__(self) -> None:
        check_amount("brightness", self.percent, -100, 400, _pct(self.percent))

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        if self.percent == 0:
            return canvas
        # alpha ≥ 0, so the "abs" of convertScaleAbs never changes a value.
        return restore_alpha(cv2.convertScaleAbs(canvas, alpha=1 + self.percent / 100), canvas)

    def describe(self) -> str:
        return f"brightness {_pct(self.percent)}"


@dataclass(frozen=True)
class Contrast(Operation):
    """Spread values away from the mean luma by 1 + percent/100 (Pillow's
    ``ImageEnhance.Contrast``): −100% is flat gray. Allowed: −100% to +400%."""

    percent: float

    def __post_init__(self) -> None:
        check_amount("contrast", self.percent, -100, 400, _pct(self.percent))

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        if self.percent == 0:
            return canvas
        means = cv2.mean(canvas)
        pivot = means[0] if canvas.ndim == 2 else float(np.dot(_LUMA, means[:3]))
        gain = 1 + self.percent / 100
        out = cv2.addWeighted(canvas, gain, canvas, 0, pivot * (1 - gain))
        return restore_alpha(out, canvas)

    def describe(self) -> str:
        return f"contrast {_pct(self.percent)}"


@dataclass(frozen=True)
class Saturation(Operation):
    """Move colours away from (or toward) their own gray by 1 + percent/100 (Pillow's
    ``ImageEnhance.Color``): −100% is gray. Gray images are unchanged.
    Allowed: −100% to +400%."""

    percent: float

    def __post_init__(self) -> None:
        check_amount("saturation", self.percent, -100, 400, _pct(self.percent))

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        if self.percent == 0 or canvas.ndim == 2:
            return canvas
        gain = 1 + self.percent / 100
        # One matrix does "gray + gain·(colour − gray)" for all three channels at once.
        matrix = gain * np.eye(3, dtype=np.float32) + (1 - gain) * np.tile(_LUMA, (3, 1))
        return mix(canvas, matrix)

    def describe(self) -> str:
        return f"saturation {_pct(self.percent)}"


@dataclass(frozen=True)
class Temperature(Operation):
    """Warmer (percent > 0) or cooler: red × (1 + percent/200), blue × (1 − percent/200).
    Gray becomes RGB. Allowed: −100% to +100%."""

    percent: float

    def __post_init__(self) -> None:
        check_amount("warmth", self.percent, -100, 100, _pct(self.percent))

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        if self.percent == 0:
            return canvas
        shift = self.percent / 200
        return mix(canvas, np.diag([1 + shift, 1.0, 1 - shift]).astype(np.float32))

    def describe(self) -> str:
        if self.percent < 0:
            return f"cooler {-self.percent:g}%"
        return f"warmer {self.percent:g}%"


# --- phrases ----------------------------------------------------------------------------

_SOFT = r"slightly|a\s+(?:little\s+)?bit|a\s+little|a\s+tad|a\s+touch|somewhat|mildly|gently|subtly|marginally"
_HARD = (r"much|a\s+lot|lots|way|far|significantly|considerably|strongly|heavily|greatly|dramatically|"
         r"substantially")
_HOW = rf"(?:just\s+)?(?:{_SOFT}|{_HARD})"
_UNIT = r"(?:%|percent\b|per\s*cent\b|pct\b|points?\b|x\b|times\b)"
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
_SATURATED = r"saturated|vivid|vibrant|colou?rful|intense"


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
    words = rf"{_PRE}\b(?:(?P<up>{up_words})|(?P<down>{down_words}))\b(?:\s+{OBJECT}\b)?{_TAIL}"
    amount = (rf"{_ADJUST}\b(?:{noun})\b(?:\s*[:=])?\s*(?:(?P<up>{_STATE_UP})\s+|(?P<down>{_STATE_DOWN})\s+)?"
              rf"(?:(?P<to>to)\s+|by\s+|of\s+)?(?P<num>{NUMBER})\s*(?P<unit>{_UNIT})?")
    state = (rf"{_ADJUST}\b(?:{noun})\s+(?:(?P<up>{_STATE_UP})|(?P<down>{_STATE_DOWN}))\b"
             rf"(?:\s+(?P<how2>{_HOW})\b)?")
    return tuple(rule(pattern, build) for pattern in (verb, words, amount, state))


def _build_desaturate(match: re.Match) -> Operation:
    if match["half"]:
        return Saturation(-50)
    return Saturation(-abs(_change(match, 20)))


RULES = (
    rule(rf"(?:(?P<how>{_HOW})\s+|(?P<pnum>{NUMBER})\s*(?P<punit>{_UNIT})\s+|(?P<half>partially|partly)\s+)"
         rf"desaturated?\b(?:\s+{OBJECT}\b)?", _build_desaturate),
    rule(rf"\bdesaturate\b(?:\s+{OBJECT}\b)?(?:\s+(?:by\s+)?(?P<num>{NUMBER})\s*(?P<unit>{_UNIT})?"
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
                   rf"warmer(?:\s+(?:colou?rs|tones?|look|feel|tint))?|warm\s+(?:{OBJECT}\s+)?up|"
                   r"warm\s+(?:colou?rs|tones?|look|feel|tint|filter)",
                   rf"cooler(?:\s+(?:colou?rs|tones?|look|feel|tint))?|colder|cool\s+(?:{OBJECT}\s+)?down|"
                   r"cool\s+(?:colou?rs|tones?|look|feel|tint|filter)", absolute=False),
)
