"""Painterly looks: cartoon, pencil sketch, watercolour, oil painting.

Every look keeps the canvas size and its alpha channel. The gray pencil sketch returns
gray (RGB + alpha when the canvas has alpha); the other looks work on RGB, so gray
canvases come back RGB.

OpenCV's painterly filters cost seconds per megapixel (``cv2.stylization`` ≈ 30 s at
16 MP, ``cv2.pencilSketch`` ≈ 8 s) and hold 70–130 bytes of temporaries per pixel, so
they run on a copy scaled down to a working size of 1–2 MP and are scaled back up
(≈ 0.3–1.1 s at 16 MP); that also makes a look the same whatever the resolution.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np

from retouch.engine.ops import Context, Operation
from retouch.engine.ops.filters import at_work_size, effect_phrase, luma, on_rgb
from retouch.engine.phrases import rule


class PainterlyLook(Operation):
    """A look computed on RGB at a working size of at most ``work_pixels`` (see the
    module docstring for why); subclasses implement ``paint``. OpenCV's photo filters
    also hold 70–130 bytes of temporaries per working pixel, so 1 MP keeps them near
    2.5× a decoded 16 MP image."""

    work_pixels: ClassVar[int] = 1_000_000

    @abstractmethod
    def paint(self, rgb: np.ndarray) -> np.ndarray:
        """The look, on HxWx3 RGB uint8; returns RGB or gray of the same size."""

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        return on_rgb(canvas, lambda rgb: at_work_size(rgb, self.paint, self.work_pixels))


@dataclass(frozen=True)
class Cartoon(PainterlyLook):
    """Flattened colours (bilateral filter) with dark lines where the luma drops below
    its local mean (adaptive threshold)."""

    work_pixels: ClassVar[int] = 2_000_000  # cheap filters; thin lines blur when scaled up

    def paint(self, rgb: np.ndarray) -> np.ndarray:
        lines = cv2.adaptiveThreshold(cv2.medianBlur(luma(rgb), 5), 255, cv2.ADAPTIVE_THRESH_MEAN_C,
                                      cv2.THRESH_BINARY, 9, 5)
        flat = cv2.bilateralFilter(rgb, 9, 75, 75)
        return cv2.bitwise_and(flat, flat, mask=lines)

    def describe(self) -> str:
        return "cartoon"


@dataclass(frozen=True)
class PencilSketch(PainterlyLook):
    """``cv2.pencilSketch``: gray pencil strokes on white, or tinted with the image's
    colours when ``colored``."""

    colored: bool = False

    def paint(self, rgb: np.ndarray) -> np.ndarray:
        # pencilSketch reads BGR (its colour variant works in YCrCb).
        gray, tinted = cv2.pencilSketch(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                                        sigma_s=60, sigma_r=0.07, shade_factor=0.05)
        return cv2.cvtColor(tinted, cv2.COLOR_BGR2RGB) if self.colored else gray

    def describe(self) -> str:
        return "colour pencil sketch" if self.colored else "pencil sketch"


@dataclass(frozen=True)
class Watercolor(PainterlyLook):
    """``cv2.stylization``: smoothed washes of colour with soft dark edges. The costliest
    filter (≈ 1 s per megapixel, more on big images)."""

    def paint(self, rgb: np.ndarray) -> np.ndarray:
        return cv2.stylization(rgb, sigma_s=60, sigma_r=0.45)

    def describe(self) -> str:
        return "watercolour painting"


@dataclass(frozen=True)
class OilPainting(PainterlyLook):
    """An approximation of an oil painting: an edge-preserving smoothing, then a
    morphological open and close with a round 5-px brush that leaves dab-shaped patches.

    ``cv2.xphoto.oilPainting`` is not in the headless OpenCV wheels this project uses, so
    one code path serves every install."""

    _BRUSH: ClassVar[np.ndarray] = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))

    def paint(self, rgb: np.ndarray) -> np.ndarray:
        smooth = cv2.edgePreservingFilter(rgb, flags=cv2.RECURS_FILTER, sigma_s=30, sigma_r=0.4)
        dabs = cv2.morphologyEx(smooth, cv2.MORPH_OPEN, self._BRUSH)
        return cv2.morphologyEx(dabs, cv2.MORPH_CLOSE, self._BRUSH)

    def describe(self) -> str:
        return "oil painting"


# --- phrases -------------------------------------------------------------------------

_COLOR_PENCIL = r"(?:colou?r(?:ed)?|colou?rful|tinted)\s+(?:pencil(?:\s+(?:sketch|drawing))?|sketch)"
_PENCIL = r"pencil\s+(?:sketch|drawing)|pencil|sketch(?:ed)?|pencil-drawn|hand-drawn\s+sketch"

RULES = (
    rule(effect_phrase(r"cartoon(?:ify|ified|ize|ized|ise|ised|ish|y)?|comic(?:\s+book)?"), lambda m: Cartoon()),
    rule(effect_phrase(_COLOR_PENCIL), lambda m: PencilSketch(colored=True)),
    rule(effect_phrase(_PENCIL), lambda m: PencilSketch()),
    rule(effect_phrase(r"water\s*-?\s*colou?rs?(?:\s+painting)?|aquarelle"), lambda m: Watercolor()),
    rule(effect_phrase(r"oil(?:\s*-?\s*paint(?:ing|ed)?|\s+on\s+canvas)"), lambda m: OilPainting()),
)
