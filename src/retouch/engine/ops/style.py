"""Style transfer between images: take the colour and tone of a reference image."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from retouch.engine.ops import Context, Operation, as_rgb, merge_alpha, split_alpha
from retouch.engine.phrases import ordinal_name, ref, reference, rule


def images_to_read(source: int) -> int:
    """``images_needed`` for an operation reading input ``source`` besides the canvas.

    "The last image" (-1) still needs a second image to read from."""
    return source + 1 if source >= 0 else 2


@dataclass(frozen=True)
class ColorTransfer(Operation):
    """Reinhard colour transfer: match the mean and spread of each L*a*b* channel of the
    canvas to those of input ``source`` (0-based). Alpha is kept."""

    source: int = 1

    @property
    def images_needed(self) -> int:  # type: ignore[override]
        return images_to_read(self.source)

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        target_lab = cv2.cvtColor(as_rgb(canvas), cv2.COLOR_RGB2LAB)
        source_lab = cv2.cvtColor(as_rgb(ctx.inputs[self.source]), cv2.COLOR_RGB2LAB)
        t_mean, t_std = cv2.meanStdDev(target_lab)
        s_mean, s_std = cv2.meanStdDev(source_lab)
        gain = s_std / np.maximum(t_std, 1e-3)
        # The transfer is an affine map per channel of a uint8 image: a lookup table
        # does it without float copies of the whole image.
        levels = np.arange(256, dtype=np.float32)[:, None]
        table = np.clip((levels - t_mean.T) * gain.T + s_mean.T, 0, 255).astype(np.uint8)
        out = cv2.cvtColor(cv2.LUT(target_lab, table[:, None, :]), cv2.COLOR_LAB2RGB)
        _, alpha = split_alpha(canvas)
        return out if alpha is None else np.dstack([out, alpha])

    def describe(self) -> str:
        return f"restyle with the colours of the {ordinal_name(self.source)} image"


@dataclass(frozen=True)
class HistogramMatch(Operation):
    """Give each channel of the canvas the histogram of the same channel of input
    ``source`` (its cumulative histogram, mapped through a lookup table). A gray
    canvas is matched to the reference's luma; transparent pixels are not counted."""

    source: int = 1

    @property
    def images_needed(self) -> int:  # type: ignore[override]
        return images_to_read(self.source)

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        color, alpha = split_alpha(canvas)
        ref_color, ref_alpha = split_alpha(ctx.inputs[self.source])
        if color.ndim == 2 and ref_color.ndim == 3:
            ref_color = cv2.cvtColor(ref_color, cv2.COLOR_RGB2GRAY)
        channels = 1 if color.ndim == 2 else 3
        tables = [_matching_table(_histogram(color, c, alpha),
                                  _histogram(ref_color, c if ref_color.ndim == 3 else 0, ref_alpha))
                  for c in range(channels)]
        table = tables[0] if channels == 1 else np.dstack(tables)
        return merge_alpha(cv2.LUT(color, table), alpha)

    def describe(self) -> str:
        return f"match the histogram of the {ordinal_name(self.source)} image"


def _histogram(image: np.ndarray, channel: int, alpha: np.ndarray | None) -> np.ndarray:
    visible = None if alpha is None else (alpha > 0).view(np.uint8)
    return cv2.calcHist([image], [channel], visible, [256], [0, 256]).ravel()


def _matching_table(counts: np.ndarray, ref_counts: np.ndarray) -> np.ndarray:
    """A 256-entry table sending each level to the reference level of the same quantile."""
    levels = np.flatnonzero(ref_counts)
    if not counts.any() or not levels.size:
        return np.arange(256, dtype=np.uint8)
    quantiles = np.cumsum(counts) / counts.sum()
    ref_quantiles = np.cumsum(ref_counts[levels]) / ref_counts.sum()
    return np.interp(quantiles, ref_quantiles, levels).round().astype(np.uint8)


_LOOK = (r"(?:colou?r\s+grad(?:ing|e)|grad(?:ing|e)|colou?r\s+(?:scheme|palette|style|tones?)|"
         r"colou?rs?|palette|(?:image\s+|visual\s+|overall\s+)?style|look|mood|tones?|tonality|"
         r"aesthetic|vibe|feel)")
_STYLE = (
    r"(?:(?:replace|give|make|restyle|change|recolou?r)\s+)?(?:" + ref("dst") + r"\s+)?"
    r"(?:to\s+)?(?:so\s+it\s+)?(?:have|has|match|matches|take|takes|get|with|use|adopt|look\s+like)?\s*"
    r"(?:the\s+)?(?:same\s+)?(?:image\s+|colou?r\s+|visual\s+|overall\s+)?"
    r"(?:style|look|colou?rs?|colou?r\s+palette|palette|tones?|colou?r\s+style)\s+"
    r"(?:as|of|from|like)\s+" + ref("src")
)
# "apply the colour grading of image 2", "transfer the style of the reference image to it"
_TRANSFER = (
    r"\b(?:apply|copy|use|take|transfer|borrow|steal|match|adopt|mimic|replicate|reproduce)\s+"
    r"(?:the\s+)?(?:same\s+)?" + _LOOK + r"\s+(?:of|from|in|used\s+in)\s+" + ref("src")
    + r"(?:\s+(?:to|onto|on)\s+(?:it|" + ref("dst") + r"))?"
)
# "in the style of the second image", "colour grade it to match image 2"
_IN_STYLE = (r"(?:\b(?:redo|render|recolou?r|restyle|edit|style|do)\s+(?:it\s+|" + ref("dst") + r"\s+)?)?"
             r"\b(?:in|with)\s+the\s+(?:same\s+)?" + _LOOK + r"\s+of\s+" + ref("src"))
_GRADE = (
    r"\b(?:colou?r[- ]?(?:grade|match|correct)|grade|restyle|style|recolou?r)\s+"
    r"(?:it\s+|" + ref("dst") + r"\s+)?(?:like|to\s+match|to|after|based\s+on|using|with)\s+" + ref("src")
)
_HISTOGRAM = (
    r"\b(?:(?:match|matching|transfer|copy|apply|use)\s+(?:the\s+|its\s+)?histograms?"
    r"(?:\s+of\s+(?:it|" + ref("dst") + r"))?\s+(?:to|with|of|from|against)"
    r"|histogram[- ]?match(?:ing|ed)?(?:\s+(?:it|" + ref("dst2") + r"))?(?:\s+(?:to|with|against|from))?"
    r"|(?:(?:apply|use|do)\s+)?histogram\s+(?:matching|specification)\s+(?:to|with|from|against|using|of))\s+" + ref("src")
)


def _transfer(match) -> Operation:
    return ColorTransfer(source=reference(match, "src"))


RULES = (
    rule(_HISTOGRAM, lambda m: HistogramMatch(source=reference(m, "src"))),
    rule(_TRANSFER, _transfer),
    rule(_IN_STYLE, _transfer),
    rule(_GRADE, _transfer),
    rule(_STYLE, _transfer),
)
