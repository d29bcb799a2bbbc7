"""Benchmark cases for the operations that read several images (compose.py, collage.py, style.py).

Each case is (name, ours, direct): both take (image, reference), RGB uint8 of one size.
Inputs that are not plain RGB (a mask, an image with a transparent half) are built once
per size, outside the timed calls.
"""

from __future__ import annotations

import cv2
import numpy as np

from retouch.engine.ops import Context
from retouch.engine.ops.collage import Collage
from retouch.engine.ops.compose import Blend, Overlay, ReplaceBackground
from retouch.engine.ops.style import ColorTransfer, HistogramMatch

_prepared: dict[tuple, np.ndarray] = {}


def _mask(image: np.ndarray) -> np.ndarray:
    """A disc covering the middle: True = replace with the reference."""
    key = ("mask", image.shape)
    if key not in _prepared:
        height, width = image.shape[:2]
        disc = np.zeros((height, width), np.uint8)
        cv2.circle(disc, (width // 2, height // 2), min(width, height) // 3, 1, -1)
        _prepared[key] = disc.astype(bool)
    return _prepared[key]


def _cutout(image: np.ndarray) -> np.ndarray:
    """``image`` with an alpha ramp: transparent left, opaque right."""
    key = ("cutout", image.shape, image.ctypes.data)
    if key not in _prepared:
        ramp = np.linspace(0, 255, image.shape[1], dtype=np.float32).astype(np.uint8)
        _prepared[key] = np.dstack([image, np.broadcast_to(ramp, image.shape[:2])])
    return _prepared[key]


def _ours(operation, region=None):
    def run(image, reference):
        ctx = Context([image, reference], region=(lambda: region(image)) if region else None)
        return operation.apply(image, ctx)
    return run


def _gap_direct(image, reference):
    """Two images and a 10px white gap, scaled down first if that would pass 8192px."""
    height, width = image.shape[:2]
    if 2 * width + 10 > 8192:
        width = (8192 - 10) // 2
        height = int(image.shape[0] * width / image.shape[1])
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
        reference = cv2.resize(reference, (width, height), interpolation=cv2.INTER_LINEAR)
    out = np.full((height, 2 * width + 10, 3), 255, np.uint8)
    out[:, :width], out[:, width + 10:] = image, reference
    return out


def _corner(image, reference, opacity):
    """``reference`` at a quarter of the width in the bottom-right corner (2% margin)."""
    height, width = image.shape[:2]
    small = cv2.resize(reference, (round(width * 0.25), round(height * 0.25)), interpolation=cv2.INTER_AREA)
    margin = round(0.02 * min(height, width))
    top, left = height - margin - small.shape[0], width - margin - small.shape[1]
    out = image.copy()
    roi = out[top:top + small.shape[0], left:left + small.shape[1]]
    roi[...] = small if opacity == 1 else cv2.addWeighted(small, opacity, roi, 1 - opacity, 0)
    return out


def _cutout_ours(image, reference):
    cutout = _cutout(image)
    return ReplaceBackground(1).apply(cutout, Context([cutout, reference]))


def _cutout_direct(image, reference):
    cutout = _cutout(image)
    weight = cutout[..., 3].astype(np.float32) * (1 / 255)
    return cv2.blendLinear(cutout[..., :3], reference, weight, 1 - weight)


def _histogram_direct(image, reference):
    tables = []
    for channel in range(3):
        counts = cv2.calcHist([image], [channel], None, [256], [0, 256]).ravel()
        ref_counts = cv2.calcHist([reference], [channel], None, [256], [0, 256]).ravel()
        levels = np.flatnonzero(ref_counts)
        tables.append(np.interp(np.cumsum(counts) / counts.sum(),
                                np.cumsum(ref_counts[levels]) / ref_counts.sum(), levels).round().astype(np.uint8))
    return cv2.LUT(image, np.dstack(tables))


def _reinhard_direct(image, reference):
    """Textbook Reinhard transfer in float L*a*b*."""
    target = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    source = cv2.cvtColor(reference, cv2.COLOR_RGB2LAB).astype(np.float32)
    t_mean, t_std = cv2.meanStdDev(target)
    s_mean, s_std = cv2.meanStdDev(source)
    shifted = (target - t_mean.ravel()) * (s_std / np.maximum(t_std, 1e-3)).ravel() + s_mean.ravel()
    return cv2.cvtColor(np.clip(shifted, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


CASES = [
    ("side by side", _ours(Collage("side by side")), lambda image, reference: cv2.hconcat([image, reference])),
    ("stacked", _ours(Collage("stacked")), lambda image, reference: cv2.vconcat([image, reference])),
    ("grid of two", _ours(Collage("grid")), lambda image, reference: cv2.hconcat([image, reference])),
    ("side by side 10px gap", _ours(Collage("side by side", gap=10)), _gap_direct),
    ("overlay bottom-right 25%", _ours(Overlay(position="bottom-right")),
     lambda image, reference: _corner(image, reference, 1.0)),
    ("watermark 50%", _ours(Overlay(position="bottom-right", opacity=50, kind="watermark")),
     lambda image, reference: _corner(image, reference, 0.5)),
    ("blend 30%", _ours(Blend(1, 30)), lambda image, reference: cv2.addWeighted(reference, 0.3, image, 0.7, 0)),
    ("background by mask", _ours(ReplaceBackground(1), region=_mask),
     lambda image, reference: cv2.copyTo(reference, _mask(image).view(np.uint8), image.copy())),
    ("background by alpha", _cutout_ours, _cutout_direct),
    ("histogram match", _ours(HistogramMatch(1)), _histogram_direct),
    ("colour transfer", _ours(ColorTransfer(1)), _reinhard_direct),
]
