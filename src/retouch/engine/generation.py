"""Reading generation prompts for ``retouch/basic``: a solid colour or a gradient,
optionally followed by edits of that canvas ("… with the text 'Hello'")."""

from __future__ import annotations

import re

from retouch.engine import instructions
from retouch.engine.ops import Operation, text
from retouch.engine.ops.canvas import DEFAULT_SIZE, GradientCanvas, SolidCanvas
from retouch.engine.phrases import COLOR, FILLER, normalise, parse_color
from retouch.errors import InvalidRequestError, UnsupportedInstructionError

MAX_SIDE = 8192
EXAMPLES = ("a solid teal 512x512 image", "a 1024x512 blue to purple gradient with the text 'Hello'",
            "vertical gradient from white to navy")
_SIZE = re.compile(r"\b(\d{1,6})\s*(?:x|×|by)\s*(\d{1,6})\s*(?:px|pixels)?\b")
_GRADIENT = re.compile(
    rf"(?:(?P<a>{COLOR})\s*(?:-|to|and|into)\s*(?P<b>{COLOR})\s+gradient"
    rf"|gradient\s+(?:from\s+)?(?P<c>{COLOR})\s*(?:-|to|and|into)\s*(?P<d>{COLOR}))")
_SOLID = re.compile(rf"(?P<color>{COLOR})")
_VERTICAL = re.compile(r"\b(?:vertical|vertically|top\s+to\s+bottom)\b")
_CANVAS_WORDS = frozenset(
    "create generate draw give of canvas background square rectangle fill filled solid plain "
    "flat blank colour color coloured colored with in wide tall pixels px horizontal from left "
    "to right".split())


def read_generation(prompt: str, size: tuple[int, int] | None) -> list[Operation]:
    """The canvas a generation prompt describes, then any edits of it; 422 naming what
    was not understood."""
    text_ = normalise(prompt)
    found: list[tuple[int, Operation]] = []
    for rule in text.RULES:  # quoted captions first: their words are not instructions
        text_ = instructions.claim(rule, text_, found)
    size_match = _SIZE.search(text_)
    canvas_size = (int(size_match[1]), int(size_match[2])) if size_match else size or DEFAULT_SIZE
    _check_size(canvas_size)
    text_ = _SIZE.sub(" ", text_)
    canvas, text_ = _gradient(text_, canvas_size) or _solid(text_, canvas_size) or (None, text_)
    text_ = _VERTICAL.sub(" ", text_)
    for rule in instructions.RULES:
        text_ = instructions.claim(rule, text_, found)
    leftover = [w for w in re.findall(r"[\w#'-]+", text_) if w not in FILLER | _CANVAS_WORDS]
    if canvas is None or leftover:
        raise UnsupportedInstructionError(_explain(prompt, leftover), param="prompt")
    return [canvas] + [op for _, op in sorted(found, key=lambda item: item[0])]


def _check_size(size: tuple[int, int]) -> None:
    if not all(1 <= side <= MAX_SIDE for side in size):
        raise InvalidRequestError(
            f"A {size[0]}x{size[1]} canvas is outside 1..{MAX_SIDE} pixels per side; ask for "
            "a smaller size.", param="prompt", code="invalid_size")


def _gradient(text_: str, size: tuple[int, int]) -> tuple[Operation, str] | None:
    match = _GRADIENT.search(text_)
    if match is None:
        return None
    first, second = match["a"] or match["c"], match["b"] or match["d"]
    operation = GradientCanvas(parse_color(first), parse_color(second), (first, second), size,
                               vertical=bool(_VERTICAL.search(text_)))
    return operation, text_[: match.start()] + " " + text_[match.end():]


def _solid(text_: str, size: tuple[int, int]) -> tuple[Operation, str] | None:
    matches = list(_SOLID.finditer(text_))
    if len(matches) != 1:
        return None
    match = matches[0]
    operation = SolidCanvas(parse_color(match["color"]), match["color"], size)
    return operation, text_[: match.start()] + " " + text_[match.end():]


def _explain(prompt: str, leftover: list[str]) -> str:
    head = (f"retouch/basic did not understand: \"{' '.join(leftover)}\"." if leftover
            else f"retouch/basic found no colour or gradient to draw in {prompt.strip()!r}.")
    return (f"{head} It generates solid colours and gradients, with text or other edits on "
            "top. Examples: " + "; ".join(f'"{e}"' for e in EXAMPLES) + ".")
