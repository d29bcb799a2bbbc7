"""Background removal for plain backgrounds: what touches the border in the border's
colour becomes transparent."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from retouch.engine.ops import Context, Operation, merge_alpha, split_alpha
from retouch.engine.phrases import COLOR, NUMBER, parse_number, rule
from retouch.errors import InvalidRequestError

DEFAULT_TOLERANCE = 32
_FLOODED = 128  # a value neither 0 nor 255 marks the flood-filled pixels


@dataclass(frozen=True)
class RemoveBackground(Operation):
    """Make the plain background transparent; the result is RGBA.

    The background colour is the most common colour of the border pixels; every pixel
    within ``tolerance`` of it (per channel, 0–255) and connected to the border is
    removed. The cut edge is feathered by a pixel so it does not look jagged; an
    existing alpha channel is kept where it is lower."""

    tolerance: int = DEFAULT_TOLERANCE

    def __post_init__(self) -> None:
        if not 0 <= self.tolerance <= 255:
            raise InvalidRequestError(
                f"Background tolerance {self.tolerance} is out of range: use 0 to 255 "
                "(or 0% to 100%).", param="prompt", code="invalid_value")

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        color, alpha = split_alpha(canvas)
        keep = foreground(color, border_color(color), self.tolerance)
        feathered = cv2.min(cv2.GaussianBlur(keep, (3, 3), 0), keep)
        if alpha is not None:
            feathered = cv2.min(feathered, alpha)
        return merge_alpha(color, feathered)

    def describe(self) -> str:
        return f"remove background, tolerance {self.tolerance}"


def border_color(color: np.ndarray) -> np.ndarray:
    """The dominant colour of the outermost pixels (HxW or HxWx3 → 1 or 3 values).

    The mode of coarsely binned colours, not the mean: a subject touching the edge must
    not pull the estimate away from the background."""
    channels = 1 if color.ndim == 2 else color.shape[2]
    border = np.concatenate([color[0], color[-1], color[:, 0], color[:, -1]]).reshape(-1, channels)
    bins = border.astype(np.int32) >> 4
    keys = (bins * (16 ** np.arange(channels - 1, -1, -1))).sum(axis=1)
    dominant = np.bincount(keys).argmax()
    return np.median(border[keys == dominant], axis=0)


def foreground(color: np.ndarray, background: np.ndarray, tolerance: int) -> np.ndarray:
    """uint8 HxW: 0 where the pixel is background (close in colour and connected to the
    border), 255 elsewhere."""
    low = tuple(float(v) for v in np.clip(background - tolerance, 0, 255))
    high = tuple(float(v) for v in np.clip(background + tolerance, 0, 255))
    if color.ndim == 2:
        low, high = low[0], high[0]
    close = cv2.inRange(color, low, high)
    # A frame of "close" pixels joins every close border pixel, so one flood fill from
    # the corner reaches all background regions that touch the border.
    framed = cv2.copyMakeBorder(close, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=255)
    cv2.floodFill(framed, None, (0, 0), _FLOODED, 0, 0, 4)
    return cv2.compare(framed[1:-1, 1:-1], _FLOODED, cv2.CMP_NE)


# At most three adjectives: an unbounded run would make long prompts slow to read.
_BACKGROUND = rf"(?:the\s+)?(?:(?:{COLOR}|plain|solid|simple|studio)\s+){{0,3}}(?:back\s*ground|bg|backdrop)\b"
_SUBJECT = (r"(?:the\s+)?(?:main\s+)?(?:subject|object|product|person|foreground|item|figure|"
            r"logo|animal|people)\b")
_TOLERANCE = (rf"(?:\s*,?\s*(?:with\s+|at\s+|using\s+)?(?:a\s+)?(?:colou?r\s+)?(?:tolerance|threshold)"
              rf"(?:\s+of)?\s+(?P<tol>{NUMBER})\s*(?P<pct>%|percent)?)?")
_REMOVE = (
    rf"\b(?:(?:remove|delete|erase|drop|strip|cut|clear|eliminate|knock\s+out|get\s+rid\s+of|"
    rf"take\s+(?:out|away))\s+(?:out\s+)?{_BACKGROUND}"
    rf"|(?:make|turn|set|change|render)?\s*{_BACKGROUND}\s+(?:to\s+)?(?:be\s+)?"
    rf"(?:transparent|see[\s-]?through|invisible|clear)\b"
    rf"|(?:(?:give\s+it|with|add|use)\s+(?:a\s+)?)?transparent\s+(?:back\s*ground|bg)\b"
    rf"|(?:back\s*ground|bg)\s+removal\b"
    rf"|(?:cut|isolate|extract|separate)\s+(?:out\s+)?{_SUBJECT}(?:\s+from\s+{_BACKGROUND})?"
    rf"|cut\s*-?\s*out\b)"
    rf"{_TOLERANCE}"
)


def _build_remove(match) -> Operation:
    if not match["tol"]:
        return RemoveBackground()
    amount = max(-1e9, min(parse_number(match["tol"]), 1e9))  # finite, for the range check
    return RemoveBackground(round(amount * 255 / 100) if match["pct"] else round(amount))


RULES = (
    rule(_REMOVE, _build_remove),
)
