"""Style transfer between images: take the colour and tone of a reference image."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from retouch.engine.ops import Operation

_ORDINALS = ["first", "second", "third", "fourth", "fifth"]


@dataclass(frozen=True)
class ColorTransfer(Operation):
    """Reinhard colour transfer: match the mean and spread of each L*a*b* channel of the
    canvas to those of input ``source`` (0-based). Alpha is kept."""

    source: int = 1

    @property
    def images_needed(self) -> int:  # type: ignore[override]
        # "the last image" (-1) still needs a second image to read from.
        return self.source + 1 if self.source >= 0 else 2

    def apply(self, canvas: np.ndarray, inputs: Sequence[np.ndarray]) -> np.ndarray:
        rgb = _rgb(canvas)
        target_lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
        source_lab = cv2.cvtColor(_rgb(inputs[self.source]), cv2.COLOR_RGB2LAB).astype(np.float32)
        t_mean, t_std = cv2.meanStdDev(target_lab)
        s_mean, s_std = cv2.meanStdDev(source_lab)
        gain = (s_std / np.maximum(t_std, 1e-3)).reshape(1, 1, 3)
        shifted = (target_lab - t_mean.reshape(1, 1, 3)) * gain + s_mean.reshape(1, 1, 3)
        out = cv2.cvtColor(np.clip(shifted, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)
        if canvas.ndim == 3 and canvas.shape[2] == 4:
            return np.dstack([out, canvas[..., 3]])
        return out

    def describe(self) -> str:
        if self.source < 0:
            return "restyle with the colours of the last image"
        name = _ORDINALS[self.source] if self.source < len(_ORDINALS) else f"#{self.source + 1}"
        return f"restyle with the colours of the {name} image"


def _rgb(pixels: np.ndarray) -> np.ndarray:
    if pixels.ndim == 2:
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB)
    return np.ascontiguousarray(pixels[..., :3])
