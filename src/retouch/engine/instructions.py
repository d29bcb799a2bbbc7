"""The instruction reader: a free-form English prompt → an ordered list of operations.

Every rule is a regular expression plus a builder. Rules claim the spans of the
prompt they match; whatever is left must be filler ("please", "make it", "then", …).
Anything else is reported as not understood — a prompt is never half applied.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from retouch.engine.ops import Operation
from retouch.engine.ops.color import Grayscale
from retouch.engine.ops.geometry import Flip, Resize, Rotate
from retouch.engine.ops.style import ColorTransfer
from retouch.errors import UnsupportedInstructionError

EXAMPLES = (
    "make it black and white, then rotate it 90 degrees",
    "flip horizontally and resize to 512x512",
    "give the first image the same style as the second image",
)

_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "fifteen": 15, "twenty": 20, "thirty": 30, "forty": 40, "forty-five": 45,
    "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}
_WORD_NUMBER = r"(?:(?:one|a|two)\s+hundred(?:\s+and)?(?:\s+(?:eighty|twenty|fifty|ninety|seventy|sixty|forty|thirty|ten))?|" + "|".join(
    sorted(_UNITS, key=len, reverse=True)) + r")"
NUMBER = rf"(?:-?\d+(?:\.\d+)?|{_WORD_NUMBER})"
_REF = (
    r"(?:the\s+)?(?:(?P<{0}o>first|second|third|fourth|fifth|last|reference|other|1st|2nd|3rd|4th|5th)"
    r"\s+(?:image|picture|photo|one|input|pic)|(?:image|picture|photo|input|pic)\s*(?:#|no\.?|number)?\s*(?P<{0}n>\d+))"
)
_ORDINAL_INDEX = {"first": 0, "1st": 0, "second": 1, "2nd": 1, "reference": 1, "other": 1,
                  "third": 2, "3rd": 2, "fourth": 3, "4th": 3, "fifth": 4, "5th": 4}
_FILLER = set(
    "please pls kindly can could would you will i want like to me it its this that the "
    "image picture photo pic and then also after next finally now just simply a an "
    "make turn convert into of my so be is by".split()
)


def parse_number(text: str) -> float:
    """``"90"``, ``"ninety"``, ``"one hundred eighty"`` → a float."""
    text = text.strip().lower()
    try:
        return float(text)
    except ValueError:
        pass
    words = [w for w in re.split(r"[\s-]+", text) if w != "and"]
    if "hundred" in words:
        head, _, tail = text.partition("hundred")
        hundreds = 1 if head.strip() in ("a", "one", "") else _UNITS[head.strip()]
        return hundreds * 100 + (parse_number(tail.replace("and", "")) if tail.strip(" and") else 0)
    return float(_UNITS[text])


def _reference(match: re.Match, name: str, count_hint: int | None = None) -> int:
    ordinal, number = match.group(f"{name}o"), match.group(f"{name}n")
    if number is not None:
        return max(0, int(number) - 1)
    if ordinal == "last":
        return -1
    return _ORDINAL_INDEX[ordinal]


def _build_rotate(match: re.Match) -> Operation:
    degrees = parse_number(match["num"]) if match["num"] else (180 if match["half"] else 90)
    direction = (match["dir"] or "").replace(" ", "")
    counter = direction.startswith(("counter", "anti", "ccw", "left", "tothe left", "totheleft"))
    return Rotate(-degrees if counter else degrees)


def _build_flip(match: re.Match) -> Operation:
    axis = match["axis"] or ""
    vertical = any(word in axis for word in ("vertical", "upside", "top", "bottom"))
    return Flip("vertical" if vertical else "horizontal")


def _build_resize(match: re.Match) -> Operation:
    if match["w"] and match["h"]:
        return Resize(width=int(match["w"]), height=int(match["h"]))
    if match["pct"]:
        return Resize(scale=parse_number(match["pct"]) / 100)
    if match["factor"]:
        return Resize(scale=parse_number(match["factor"]))
    if match["side"] == "width":
        return Resize(width=int(match["px"]))
    return Resize(height=int(match["px"]))


def _build_style(match: re.Match) -> Operation:
    return ColorTransfer(source=_reference(match, "src"))


_DIRECTION = r"(?P<dir>counter[- ]?clockwise|anti[- ]?clockwise|clockwise|ccw|cw|to\s+the\s+left|to\s+the\s+right|left|right)"
_RESIZE = (
    r"\b(?:resize|scale|shrink|enlarge|downscale|upscale)\b(?:\s+(?:it|the\s+image|image))?\s*(?:down|up)?\s*"
    r"(?:(?:to|by)\s+)?(?:(?P<w>\d+)\s*(?:x|×|by)\s*(?P<h>\d+)(?:\s*px|\s*pixels)?"
    r"|(?P<pct>" + NUMBER + r")\s*(?:%|percent)"
    r"|(?:a\s+factor\s+of\s+)?(?P<factor>\d+(?:\.\d+)?)\s*(?:x|times)"
    r"|(?:a\s+)?(?P<side>width|height)\s+(?:of\s+)?(?P<px>\d+)\s*(?:px|pixels)?)"
)
_STYLE = (
    r"(?:(?:replace|give|make|restyle|change|recolou?r)\s+)?(?:" + _REF.format("dst") + r"\s+)?"
    r"(?:to\s+)?(?:so\s+it\s+)?(?:have|has|match|matches|take|takes|get|with|use|adopt|look\s+like)?\s*"
    r"(?:the\s+)?(?:same\s+)?(?:image\s+|colou?r\s+|visual\s+|overall\s+)?"
    r"(?:style|look|colou?rs?|colou?r\s+palette|palette|tones?|colou?r\s+style)\s+"
    r"(?:as|of|from|like)\s+" + _REF.format("src")
)


@dataclass(frozen=True)
class Rule:
    pattern: re.Pattern[str]
    build: Callable[[re.Match], Operation]


RULES: tuple[Rule, ...] = (
    Rule(re.compile(_STYLE), _build_style),
    Rule(re.compile(
        r"\b(?:gr[ae]y\s*-?\s*scale|black\s*(?:-|and|&)\s*white|b\s*&\s*w|b/w|monochrome|"
        r"desaturated?|(?:remove|drop)\s+(?:all\s+)?(?:the\s+)?colou?rs?)\b"), lambda m: Grayscale()),
    Rule(re.compile(
        rf"\b(?:rotate|(?:turn|spin)(?=\s+(?:it\s+|the\s+image\s+)?(?:by\s+)?(?:\d|{_WORD_NUMBER}|"
        rf"clockwise|counter|anti|left|right|upside|half)))\b(?:\s+(?:it|the\s+image|image))?\s*(?:by\s+)?"
        rf"(?:(?P<num>{NUMBER})\s*(?:degrees?|deg|°)?|(?P<half>half\s+a\s+turn|upside\s+down))?\s*{_DIRECTION}?"),
        _build_rotate),
    Rule(re.compile(
        r"\b(?:flip|mirror)\b(?:\s+(?:it|the\s+image|image))?\s*"
        r"(?P<axis>horizontally|vertically|left[- ]to[- ]right|top[- ]to[- ]bottom|upside[- ]down|horizontal|vertical)?"),
        _build_flip),
    Rule(re.compile(_RESIZE), _build_resize),
)


def read_instructions(prompt: str) -> list[Operation]:
    """Every operation the prompt asks for, in the order written.

    Raises ``UnsupportedInstructionError`` (422) naming the part not understood.
    """
    text = _normalise(prompt)
    found: list[tuple[int, Operation]] = []
    for rule in RULES:
        text = _claim(rule, text, found)
    leftover = _unclaimed_parts(text)
    if leftover or not found:
        raise UnsupportedInstructionError(_explain(prompt, leftover), param="prompt")
    return [op for _, op in sorted(found, key=lambda item: item[0])]


def _normalise(prompt: str) -> str:
    text = prompt.lower().replace("’", "'").replace("“", '"').replace("”", '"')
    return re.sub(r"\s+", " ", text)


def _claim(rule: Rule, text: str, found: list[tuple[int, Operation]]) -> str:
    """Record each match of ``rule`` and blank its span so no other rule reuses it."""
    for match in rule.pattern.finditer(text):
        if not match.group(0).strip():
            continue
        found.append((match.start(), rule.build(match)))
        text = text[: match.start()] + " " * (match.end() - match.start()) + text[match.end():]
    return text


def _unclaimed_parts(text: str) -> list[str]:
    parts = []
    for segment in re.split(r"[,;.!?:]+|\s{2,}", text):
        words = re.findall(r"[\w'%°#&/-]+", segment)
        if any(word not in _FILLER for word in words):
            while words[0] in _FILLER:
                words.pop(0)
            while words[-1] in _FILLER:
                words.pop()
            parts.append(" ".join(words))
    return parts


def _explain(prompt: str, leftover: list[str]) -> str:
    if not prompt.strip():
        head = "The prompt is empty."
    elif leftover:
        head = "retouch/basic did not understand: " + "; ".join(f'"{p}"' for p in leftover) + "."
    else:
        head = f"retouch/basic did not find an edit in {prompt.strip()!r}."
    return (
        f"{head} It can do: grayscale, rotate, flip, resize and restyle one image with the "
        "colours of another. Examples: " + "; ".join(f'"{e}"' for e in EXAMPLES) + "."
    )
