"""Masked edits: inpaint, fill, blur or pixelate only where the request's mask says.

The mask follows OpenAI's convention: its transparent pixels mark the area to edit
(``ctx.edit_region()``, True = edit). Every operation here sets ``needs_mask`` so the
caller can turn a missing mask into a 400 before any work; ``apply`` checks again.
Each works on the bounding box of the region only, so a small mask on a big image
stays cheap.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from dataclasses import dataclass

import cv2
import numpy as np

from retouch.engine.ops import Context, Operation, merge_alpha, split_alpha
from retouch.engine.ops.filters import pixelate
from retouch.engine.phrases import COLOR, NUMBER, parse_color, parse_number, rule
from retouch.errors import InvalidRequestError

MAX_BLUR_RADIUS = 500
MAX_BLOCK = 1024
INPAINT_RADIUS = 5


class MaskOperation(Operation):
    """Base of the masked edits: find the region, edit its bounding box, paste back."""

    needs_mask = True
    margin: int = 0  # pixels around the region the edit reads (a blur's reach)

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        region = region_for(canvas, ctx)
        box = self.box(region)
        if box is None:
            return canvas
        y0, y1, x0, x1 = box
        patch = self.edit(canvas[y0:y1, x0:x1], region[y0:y1, x0:x1])
        out = _widened(canvas, patch)
        np.copyto(out[y0:y1, x0:x1], patch, where=_per_channel(region[y0:y1, x0:x1], patch))
        return out

    def box(self, region: np.ndarray) -> tuple[int, int, int, int] | None:
        """The part of the canvas the edit reads: the region's bounding box and margin."""
        return bounding_box(region, self.margin)

    @abstractmethod
    def edit(self, patch: np.ndarray, region: np.ndarray) -> np.ndarray:
        """The edited patch (same height and width; may gain colour channels)."""


def region_for(canvas: np.ndarray, ctx: Context) -> np.ndarray:
    """The edit region at the canvas size (a mask drawn for the input follows a resize)."""
    region = ctx.edit_region()
    if region is None:
        raise InvalidRequestError(
            "This instruction edits the masked area, but the request has no mask. "
            "Send a `mask` image whose transparent pixels mark the area to edit.",
            param="mask", code="missing_mask")
    height, width = canvas.shape[:2]
    if region.shape != (height, width):
        resized = cv2.resize(region.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
        region = resized.astype(bool)
    return region


def bounding_box(region: np.ndarray, margin: int = 0) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) around the True pixels, grown by ``margin``; None if none."""
    rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
    if rows.size == 0:
        return None
    height, width = region.shape
    return (max(rows[0] - margin, 0), min(rows[-1] + 1 + margin, height),
            max(cols[0] - margin, 0), min(cols[-1] + 1 + margin, width))


def _widened(canvas: np.ndarray, patch: np.ndarray) -> np.ndarray:
    """A copy of the canvas, made RGB when a colour lands on a gray one."""
    if patch.ndim == canvas.ndim:
        return canvas.copy()
    return cv2.cvtColor(canvas, cv2.COLOR_GRAY2RGB)


def _per_channel(region: np.ndarray, patch: np.ndarray) -> np.ndarray:
    return region if patch.ndim == 2 else region[..., None]


@dataclass(frozen=True)
class InpaintMask(MaskOperation):
    """Fill the region from its surroundings (Telea's fast marching inpainting).
    Alpha is kept as it was."""

    margin = INPAINT_RADIUS + 1

    def edit(self, patch: np.ndarray, region: np.ndarray) -> np.ndarray:
        color, alpha = split_alpha(patch)
        mask = region.astype(np.uint8)
        filled = cv2.inpaint(np.ascontiguousarray(color), mask, INPAINT_RADIUS, cv2.INPAINT_TELEA)
        return merge_alpha(filled, alpha)

    def describe(self) -> str:
        return "inpaint masked area"


@dataclass(frozen=True)
class FillMask(MaskOperation):
    """Paint the region one opaque colour."""

    color: tuple[int, int, int]
    name: str

    def edit(self, patch: np.ndarray, region: np.ndarray) -> np.ndarray:
        height, width = patch.shape[:2]
        r, g, b = self.color
        if patch.ndim == 2 and r == g == b:
            return np.full((height, width), r, np.uint8)
        if patch.ndim == 3 and patch.shape[2] == 4:
            return np.full((height, width, 4), (r, g, b, 255), np.uint8)
        return np.full((height, width, 3), self.color, np.uint8)

    def describe(self) -> str:
        return f"fill masked area {self.name}"


@dataclass(frozen=True)
class BlurMask(MaskOperation):
    """Gaussian blur inside the region (kernel 2·radius+1); alpha is blurred too."""

    radius: int = 10

    def __post_init__(self) -> None:
        if not 1 <= self.radius <= MAX_BLUR_RADIUS:
            raise InvalidRequestError(
                f"Blur radius {self.radius} is out of range: use 1 to {MAX_BLUR_RADIUS} pixels.",
                param="prompt", code="invalid_value")

    @property
    def margin(self) -> int:  # type: ignore[override]
        return self.radius

    def edit(self, patch: np.ndarray, region: np.ndarray) -> np.ndarray:
        size = 2 * self.radius + 1
        return cv2.GaussianBlur(patch, (size, size), 0)

    def describe(self) -> str:
        return f"blur masked area radius {self.radius}"


@dataclass(frozen=True)
class PixelateMask(MaskOperation):
    """Mosaic of ``block``×``block`` squares (aligned to the image grid) inside the region."""

    block: int = 16

    def __post_init__(self) -> None:
        if not 2 <= self.block <= MAX_BLOCK:
            raise InvalidRequestError(
                f"Pixel block size {self.block} is out of range: use 2 to {MAX_BLOCK} pixels.",
                param="prompt", code="invalid_value")

    def box(self, region: np.ndarray) -> tuple[int, int, int, int] | None:
        box = bounding_box(region)
        return None if box is None else _snap(box, self.block, region.shape)

    def edit(self, patch: np.ndarray, region: np.ndarray) -> np.ndarray:
        return pixelate(patch, self.block)

    def describe(self) -> str:
        return f"pixelate masked area {self.block}px blocks"


def _snap(box: tuple[int, int, int, int], block: int, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Grow the box to whole blocks of the image grid, so blocks line up wherever the mask is."""
    y0, y1, x0, x1 = box
    height, width = shape
    return (y0 // block * block, min(-(-y1 // block) * block, height),
            x0 // block * block, min(-(-x1 // block) * block, width))


# "the masked area", "the mask", "what's under the mask", "the selection".
REGION = (r"(?:(?:the|this)\s+)?(?:masked|mask)(?:\s+(?:area|region|part|portion|object|section|zone|spot|pixels))?\b"
          r"|(?:everything|what(?:'s|\s+is)|(?:the\s+)?(?:area|region|part|object|thing|stuff|pixels))\s+"
          r"(?:under|inside|in|within|beneath|covered\s+by)\s+the\s+mask\b"
          r"|(?:the\s+)?(?:selected\s+(?:area|region|part)|selection)\b")
_R = rf"(?:{REGION})"


def _fill_color(group: str) -> str:
    # "black" in "black and white" is a whole-image grayscale, not a fill colour.
    return rf"(?:solid\s+)?(?P<{group}>{COLOR})(?!\s*(?:-|and|&)\s*white)"


_FILL = (rf"\b(?:(?:fill|paint|colou?r|cover)\s+(?:in\s+|over\s+)?{_R}\s+(?:with\s+|in\s+)?{_fill_color('color')}"
         rf"|(?P<out>black|white)\s*-?\s*out\s+{_R}"
         rf"|(?:make|turn)\s+{_R}\s+{_fill_color('color2')})")
_INPAINT = (rf"\b(?:inpaint(?:ing)?(?:\s+{_R})?|(?:remove|erase|delete|clean\s+up|get\s+rid\s+of|heal|"
            rf"fill\s+in)\s+{_R})(?:\s+(?:with|using)\s+inpainting)?")
_STRENGTH = r"(?P<strength>lightly|a\s+little|slightly|gently|heavily|strongly|a\s+lot|hard)"
_AMOUNT = rf"(?:(?:by|with\s+(?:a\s+)?radius(?:\s+of)?|radius|at\s+radius)\s+(?P<r>{NUMBER})\s*(?:px|pixels?)?)"
_BLUR = (rf"\b(?:(?:blur|soften|smudge|defocus)\s+(?:out\s+)?{_R}"
         rf"|(?:add|apply)\s+(?:a\s+)?(?:gaussian\s+)?blur\s+(?:to|on)\s+{_R}"
         rf"|(?:make|turn)\s+{_R}\s+(?:blurry|blurred))"
         rf"(?:\s+{_AMOUNT})?(?:\s+{_STRENGTH})?")
_PIXELATE = (rf"\b(?:pixel(?:ate|ise|ize)|mosaic|redact|censor|obscure)\s+{_R}"
             rf"(?:\s+(?:with|in|using)\s+(?:(?P<b>{NUMBER})\s*(?:px|pixels?)?\s+(?:blocks?|squares?|cells?)"
             rf"|(?:a\s+)?block\s+size\s+(?:of\s+)?(?P<b2>{NUMBER})\s*(?:px|pixels?)?))?")

_STRENGTH_RADIUS = {"lightly": 4, "a little": 4, "slightly": 4, "gently": 4,
                    "heavily": 25, "strongly": 25, "a lot": 25, "hard": 25}


def _build_fill(match) -> Operation:
    name = match["color"] or match["color2"] or match["out"]
    return FillMask(parse_color(name), name)


def _build_blur(match) -> Operation:
    if match["r"]:
        return BlurMask(whole_number(match["r"]))
    strength = re.sub(r"\s+", " ", match["strength"]) if match["strength"] else None
    return BlurMask(_STRENGTH_RADIUS.get(strength, 10))


def _build_pixelate(match) -> Operation:
    amount = match["b"] or match["b2"]
    return PixelateMask(whole_number(amount)) if amount else PixelateMask()


def whole_number(text: str) -> int:
    """``parse_number`` rounded; absurd sizes stay absurd (for the range check) but finite."""
    return round(max(-1e9, min(parse_number(text), 1e9)))


RULES = (
    rule(_FILL, _build_fill),
    rule(_INPAINT, lambda m: InpaintMask()),
    rule(_BLUR, _build_blur),
    rule(_PIXELATE, _build_pixelate),
)
