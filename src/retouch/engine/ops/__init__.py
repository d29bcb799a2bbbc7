"""Operations of the built-in engine: one small module per family.

An operation is a frozen dataclass with ``apply(canvas, inputs) -> canvas`` working on
RGB/RGBA uint8 arrays, ``describe()`` for ``revised_prompt``, and
``images_needed`` (the highest input index it reads, plus one).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np


class Operation(ABC):
    images_needed: int = 1

    @abstractmethod
    def apply(self, canvas: np.ndarray, inputs: Sequence[np.ndarray]) -> np.ndarray:
        """Return the edited canvas; ``inputs`` are all decoded input images in order."""

    @abstractmethod
    def describe(self) -> str:
        """A short readable form, e.g. ``rotate 90° clockwise``."""
