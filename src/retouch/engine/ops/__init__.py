"""Operations of the built-in engine: one small module per family.

An operation is a frozen dataclass with ``apply(canvas, ctx) -> canvas`` and
``describe()`` (the readable form shown in ``revised_prompt``). Canvases are uint8
numpy arrays: HxW (gray), HxWx3 (RGB) or HxWx4 (RGBA); every operation accepts all
three. ``images_needed`` says how many inputs the operation reads (0 for operations
that create a canvas). Each module also declares ``RULES``, the phrases that build
its operations (see ``engine/phrases.py``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import numpy as np


class Context:
    """What an operation may read besides the canvas: every input image (decoded on
    first use) and the mask's edit region."""

    def __init__(self, inputs: Sequence[np.ndarray],
                 region: Callable[[], np.ndarray | None] | None = None) -> None:
        self.inputs = inputs
        self._region = region

    def edit_region(self) -> np.ndarray | None:
        """Boolean HxW, True where the mask is transparent (OpenAI: edit here); None
        when the request has no mask."""
        return self._region() if self._region is not None else None


NO_CONTEXT = Context([])


class Operation(ABC):
    images_needed: int = 1
    needs_mask: bool = False

    @abstractmethod
    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        """Return the edited canvas (a new array, or ``canvas`` itself if unchanged)."""

    @abstractmethod
    def describe(self) -> str:
        """A short readable form, e.g. ``rotate 90° clockwise``."""


def split_alpha(canvas: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(colour part, alpha or None). The colour part is HxW or HxWx3."""
    if canvas.ndim == 3 and canvas.shape[2] == 4:
        return canvas[..., :3], canvas[..., 3]
    return canvas, None


def merge_alpha(color: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """Put ``alpha`` back on ``color`` (gray colour becomes RGB first)."""
    if alpha is None:
        return color
    if color.ndim == 2:
        color = np.repeat(color[..., None], 3, axis=2)
    return np.dstack([color, alpha])


def as_rgb(canvas: np.ndarray) -> np.ndarray:
    """The colour part as HxWx3 RGB (gray is repeated, alpha dropped)."""
    color, _ = split_alpha(canvas)
    if color.ndim == 2:
        return np.repeat(color[..., None], 3, axis=2)
    return color
