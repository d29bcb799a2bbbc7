"""Sizes: the limits on a result, lengths in pixels or percent, and the phrase pieces
that read sizes, lengths and aspect ratios from a prompt.

Amounts that are wrong for any image (a 0 px size, a 150% crop) are refused when the
prompt is read; sizes that depend on the image (a crop larger than it, an output beyond
``MAX_SIDE`` per side or ``MAX_PIXELS`` in all) are refused when applied. Both raise
``InvalidRequestError(param="prompt")``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from retouch.engine.phrases import NUMBER, parse_number
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
        return f"{format_number(self.value)}{self.unit}"


def format_number(value: float) -> str:
    """``value`` as written in ``describe()`` and messages: 10.0 → "10", 2.5 → "2.5"."""
    return f"{value:g}"


# --- phrases ------------------------------------------------------------------------------

IT = r"(?:\s+(?:it|the\s+(?:image|picture|photo)|image|picture|photo))?"
LENGTH_UNIT = r"px|pixels?|%|percent|per\s*cent"
SIZE = r"(?P<w>\d+)\s*(?:x|×|by|\*)\s*(?P<h>\d+)(?:\s*(?:px|pixels))?"
RATIO = (r"(?P<ratio>\d+(?:\.\d+)?\s*[:/]\s*\d+(?:\.\d+)?|\d+\s*(?:x|×|by)\s*\d+(?=\s+(?:aspect\s+)?ratio)"
          r"|square)(?:\s+(?:aspect\s+ratio|ratio|aspect|format|shape))?")


def length_phrase(name: str) -> str:
    return rf"(?P<{name}>{NUMBER})\s*(?P<{name}_unit>{LENGTH_UNIT})?"


def parse_length(match: re.Match, name: str, default_unit: str = "px") -> Length:
    unit = match[f"{name}_unit"]
    value = parse_number(match[name])
    if unit is None:
        return Length(value, default_unit)
    return Length(value, "%" if unit == "%" or unit.startswith("per") else "px")


def parse_pixels(text: str) -> int:
    """A pixel count from the prompt; absurd ones are refused before rounding."""
    value = parse_number(text)
    shown = text if len(text) <= 12 else text[:12] + "…"
    require(abs(value) <= 10 * MAX_SIDE,
            f"{shown} pixels is far beyond the limit of {MAX_SIDE} per side; ask for a smaller size.")
    return round(value)


def parse_ratio(text: str) -> tuple[float, float]:
    if text == "square":
        return (1.0, 1.0)
    first, second = re.findall(r"\d+(?:\.\d+)?", text)
    return (float(first), float(second))
