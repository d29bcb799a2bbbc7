"""Reading generation prompts for ``retouch/basic``: solid colours and gradients."""

from __future__ import annotations

import re

from retouch.engine.ops import Operation
from retouch.engine.ops.canvas import DEFAULT_SIZE, GradientCanvas, SolidCanvas
from retouch.engine.phrases import COLOR as _COLOR
from retouch.engine.phrases import normalise, parse_color
from retouch.errors import InvalidRequestError, UnsupportedInstructionError

MAX_SIDE = 8192
EXAMPLES = ("a solid teal 512x512 image", "a 1024x512 blue to purple gradient",
            "vertical gradient from white to navy")
_SIZE = re.compile(r"\b(\d{1,5})\s*(?:x|×|by)\s*(\d{1,5})\s*(?:px|pixels)?\b")
_GRADIENT = re.compile(
    rf"(?:(?P<a>{_COLOR})\s*(?:-|to|and|into)\s*(?P<b>{_COLOR})\s+gradient"
    rf"|gradient\s+(?:from\s+)?(?P<c>{_COLOR})\s*(?:-|to|and|into)\s*(?P<d>{_COLOR}))")
_SOLID = re.compile(rf"(?P<color>{_COLOR})")
_VERTICAL = re.compile(r"\b(?:vertical|vertically|top\s+to\s+bottom)\b")
_FILLER = set(
    "a an the of please make me create generate draw give i want would like an image picture "
    "canvas background square rectangle fill filled solid plain flat blank colour color "
    "coloured colored with in wide tall pixels px horizontal from left to right".split())


def read_generation(prompt: str, size: tuple[int, int] | None) -> Operation:
    """The canvas a generation prompt describes; 422 naming what was not understood."""
    text = normalise(prompt)
    size_match = _SIZE.search(text)
    canvas_size = (int(size_match[1]), int(size_match[2])) if size_match else size or DEFAULT_SIZE
    _check_size(canvas_size)
    text = _SIZE.sub(" ", text)
    operation, text = _gradient(text, canvas_size) or _solid(text, canvas_size) or (None, text)
    text = _VERTICAL.sub(" ", text)
    leftover = [w for w in re.findall(r"[\w#'-]+", text) if w not in _FILLER]
    if operation is None or leftover:
        raise UnsupportedInstructionError(_explain(prompt, leftover), param="prompt")
    return operation


def _check_size(size: tuple[int, int]) -> None:
    if not all(1 <= side <= MAX_SIDE for side in size):
        raise InvalidRequestError(
            f"A {size[0]}x{size[1]} canvas is outside 1..{MAX_SIDE} pixels per side; ask for "
            "a smaller size.", param="prompt", code="invalid_size")


def _gradient(text: str, size: tuple[int, int]) -> tuple[Operation, str] | None:
    match = _GRADIENT.search(text)
    if match is None:
        return None
    first, second = match["a"] or match["c"], match["b"] or match["d"]
    operation = GradientCanvas(parse_color(first), parse_color(second), (first, second), size,
                               vertical=bool(_VERTICAL.search(text)))
    return operation, text[: match.start()] + " " + text[match.end():]


def _solid(text: str, size: tuple[int, int]) -> tuple[Operation, str] | None:
    matches = list(_SOLID.finditer(text))
    if len(matches) != 1:
        return None
    match = matches[0]
    return SolidCanvas(parse_color(match["color"]), match["color"], size), text[: match.start()] + " " + text[match.end():]


def _explain(prompt: str, leftover: list[str]) -> str:
    head = (f"retouch/basic did not understand: \"{' '.join(leftover)}\"." if leftover
            else f"retouch/basic found no colour or gradient to draw in {prompt.strip()!r}.")
    return (f"{head} It generates solid colours and gradients. Examples: "
            + "; ".join(f'"{e}"' for e in EXAMPLES) + ".")
