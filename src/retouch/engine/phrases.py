"""The shared vocabulary of instructions: numbers, colours, image references, rules.

Every operation module declares its own ``RULES``: regular expressions over the
normalised (lower-case, single-spaced) prompt, each with a builder that turns a match
into an ``Operation``. The helpers here keep those modules short and consistent.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from PIL import ImageColor

from retouch.engine.ops import Operation

_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "fifteen": 15, "twenty": 20, "thirty": 30, "forty": 40, "forty-five": 45,
    "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
    "half": 0.5, "a quarter": 0.25, "quarter": 0.25, "twice": 2, "double": 2,
    "triple": 3, "thrice": 3, "a third": 1 / 3,
}
_TENS = "eighty|twenty|fifty|ninety|seventy|sixty|forty|thirty|ten"
WORD_NUMBER = (rf"(?:(?:one|a|two|three)\s+hundred(?:\s+and)?(?:\s+(?:{_TENS}))?(?:[\s-]+(?:one|two|three|four|five|six|seven|eight|nine))?|"
               rf"(?:{_TENS})[\s-](?:one|two|three|four|five|six|seven|eight|nine)|"
               + "|".join(sorted((re.escape(k) for k in _UNITS), key=len, reverse=True)) + r")")
# A number starts where no digit or word precedes it, and its digits never backtrack:
# otherwise a 6,000-digit run costs every rule quadratic time.
NUMBER = rf"(?<![\d.])(?:[-+]?\d++(?:\.\d++)?|[-+]?\.\d++|{WORD_NUMBER})"

_ORDINAL_INDEX = {"first": 0, "1st": 0, "second": 1, "2nd": 1, "reference": 1, "other": 1,
                  "third": 2, "3rd": 2, "fourth": 3, "4th": 3, "fifth": 4, "5th": 4,
                  "sixth": 5, "6th": 5, "last": -1, "final": -1}
_ORDINALS = "|".join(sorted(_ORDINAL_INDEX, key=len, reverse=True))
_NOUNS = r"(?:image|picture|photo|one|input|pic|img)"

# Colour names Pillow knows (CSS), longest first so "darkblue" wins over "blue".
_COLOR_NAMES = sorted(ImageColor.colormap, key=len, reverse=True)
COLOR = r"(?:#[0-9a-f]{6}\b|#[0-9a-f]{3}\b|\b(?:" + "|".join(_COLOR_NAMES) + r")\b)"
_COMPOUND = re.compile(r"\b(light|dark|pale|deep|hot|sky|sea|navy|forest|royal|steel|slate|"
                       r"midnight|dodger|cornflower|medium|lime|spring|lawn|olive)\s+(\w+)\b")

# Words that carry no instruction of their own.
FILLER = frozenset(
    "please pls kindly can could would you will i want like to me it its this that the "
    "image picture photo pic and then also after next finally now just simply a an "
    "make turn convert into of my so be is by some bit little slightly".split()
)


@dataclass(frozen=True)
class Rule:
    """A phrase pattern and the operation a match builds."""

    pattern: re.Pattern[str]
    build: Callable[[re.Match], Operation]


def rule(pattern: str, build: Callable[[re.Match], Operation]) -> Rule:
    return Rule(re.compile(pattern), build)


def parse_number(text: str) -> float:
    """``"90"``, ``"ninety"``, ``"one hundred eighty"``, ``"twice"`` → a float."""
    text = re.sub(r"\s+", " ", text.strip().lower())
    try:
        return float(text)
    except ValueError:
        pass
    if "hundred" in text:
        head, _, tail = text.partition("hundred")
        hundreds = 1 if head.strip() in ("a", "one", "") else _UNITS[head.strip()]
        tail = re.sub(r"^\s*and\b", "", tail).strip()
        return hundreds * 100 + (parse_number(tail) if tail else 0)
    if text in _UNITS:
        return float(_UNITS[text])
    parts = re.split(r"[\s-]+", text)  # "ninety five", "forty-two"
    if len(parts) == 2 and all(part in _UNITS for part in parts):
        return float(_UNITS[parts[0]] + _UNITS[parts[1]])
    raise ValueError(f"not a number: {text!r}")


def ref(name: str) -> str:
    """A pattern for a reference to an input image, with groups ``{name}o`` / ``{name}n``.

    Matches "the second image", "image 2", "picture #3", "the reference image",
    "the last one"."""
    return (rf"(?:the\s+)?(?:(?P<{name}o>{_ORDINALS})\s+{_NOUNS}"
            rf"|{_NOUNS}\s*(?:#|no\.?|number)?\s*(?P<{name}n>\d+))")


def reference(match: re.Match, name: str) -> int:
    """The 0-based input index a ``ref(name)`` match names (-1 for the last image)."""
    ordinal, number = match.group(f"{name}o"), match.group(f"{name}n")
    if number is not None:
        return max(0, int(number) - 1)
    return _ORDINAL_INDEX[ordinal]


def ordinal_name(index: int) -> str:
    """0 → "first", 1 → "second", -1 → "last"."""
    names = ["first", "second", "third", "fourth", "fifth", "sixth"]
    if index < 0:
        return "last"
    return names[index] if index < len(names) else f"#{index + 1}"


# A quoted span: opens after a non-word character and closes with the matching kind of
# quote before one ("don't" is no quote). Bounded, so a prompt of quotes stays linear.
QUOTED = re.compile(r"""(?<!\w)(?:'(?P<a>[^\n]{1,500}?)['’]|"(?P<b>[^\n]{1,500}?)["”]"""
                    r"""|‘(?P<c>[^\n]{1,500}?)['’]|“(?P<d>[^\n]{1,500}?)["”])(?!\w)""")


def quoted_text(match: re.Match) -> str:
    """The text inside a ``QUOTED`` match, as typed."""
    return match["a"] or match["b"] or match["c"] or match["d"]


def normalise(prompt: str) -> str:
    """Lower case, single spaces, two-word colour names joined, curly quotes made
    straight — outside quotes only: quoted text (a caption) keeps its case and spacing."""
    pieces, last = [], 0
    for match in QUOTED.finditer(prompt):
        pieces.append(_normalise_words(prompt[last:match.start()]))
        pieces.append(f'"{quoted_text(match)}"')
        last = match.end()
    pieces.append(_normalise_words(prompt[last:]))
    return "".join(pieces)


def _normalise_words(text: str) -> str:
    text = re.sub(r"\s+", " ", text.lower())
    return _COMPOUND.sub(_join_compound, text)


def _join_compound(match: re.Match) -> str:
    joined = match[1] + match[2]
    return joined if joined in ImageColor.colormap else match[0]


def parse_color(text: str) -> tuple[int, int, int]:
    """A CSS colour name or ``#rgb`` / ``#rrggbb`` → an RGB tuple."""
    return ImageColor.getrgb(text.strip())[:3]
