"""Style transfer between images: take the colour and tone of a reference image."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from retouch.engine.ops import Context, Operation, as_rgb, split_alpha
from retouch.engine.phrases import ordinal_name, ref, reference, rule

@dataclass(frozen=True)
class ColorTransfer(Operation):
    """Reinhard colour transfer: match the mean and spread of each L*a*b* channel of the
    canvas to those of input ``source`` (0-based). Alpha is kept."""

    source: int = 1

    @property
    def images_needed(self) -> int:  # type: ignore[override]
        # "the last image" (-1) still needs a second image to read from.
        return self.source + 1 if self.source >= 0 else 2

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        target_lab = cv2.cvtColor(as_rgb(canvas), cv2.COLOR_RGB2LAB).astype(np.float32)
        source_lab = cv2.cvtColor(as_rgb(ctx.inputs[self.source]), cv2.COLOR_RGB2LAB).astype(np.float32)
        t_mean, t_std = cv2.meanStdDev(target_lab)
        s_mean, s_std = cv2.meanStdDev(source_lab)
        gain = (s_std / np.maximum(t_std, 1e-3)).reshape(1, 1, 3)
        shifted = (target_lab - t_mean.reshape(1, 1, 3)) * gain + s_mean.reshape(1, 1, 3)
        out = cv2.cvtColor(np.clip(shifted, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)
        _, alpha = split_alpha(canvas)
        return out if alpha is None else np.dstack([out, alpha])

    def describe(self) -> str:
        return f"restyle with the colours of the {ordinal_name(self.source)} image"


_STYLE = (
    r"(?:(?:replace|give|make|restyle|change|recolou?r)\s+)?(?:" + ref("dst") + r"\s+)?"
    r"(?:to\s+)?(?:so\s+it\s+)?(?:have|has|match|matches|take|takes|get|with|use|adopt|look\s+like)?\s*"
    r"(?:the\s+)?(?:same\s+)?(?:image\s+|colou?r\s+|visual\s+|overall\s+)?"
    r"(?:style|look|colou?rs?|colou?r\s+palette|palette|tones?|colou?r\s+style)\s+"
    r"(?:as|of|from|like)\s+" + ref("src")
)

RULES = (
    rule(_STYLE, lambda m: ColorTransfer(source=reference(m, "src"))),
)
