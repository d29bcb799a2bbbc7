"""Colour and tone operations against the most direct OpenCV call giving the same pixels."""

from __future__ import annotations

import cv2
import numpy as np

from retouch.engine.ops import Context
from retouch.engine.ops.adjustments import Brightness, Contrast, Saturation, Temperature
from retouch.engine.ops.color import Equalize, Gamma, Grayscale, HueShift, Invert, Posterize, Sepia, Threshold

_SEPIA = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], dtype=np.float32)
_RAMP = np.arange(256)
_GAMMA_22 = np.clip(np.rint(255 * (_RAMP / 255) ** (1 / 2.2)), 0, 255).astype(np.uint8)
_POSTER_4 = (_RAMP * 4 // 256 * 85).astype(np.uint8)


def ours(op):
    return lambda image, reference: op.apply(image, Context([image, reference]))


def direct_contrast(image, reference):
    """+30% around the mean luma: one mean, one multiply-add."""
    red, green, blue, _ = cv2.mean(image)
    pivot = 0.299 * red + 0.587 * green + 0.114 * blue
    return cv2.addWeighted(image, 1.3, image, 0, pivot * -0.3)


def direct_saturation(image, reference):
    """+30%: blend each pixel away from its own gray (what PIL's ImageEnhance.Color does)."""
    gray = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    return cv2.addWeighted(image, 1.3, gray, -0.3, 0)


def direct_hue(image, reference):
    """+30°: 21 steps of the 256-step full-range HSV wheel."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV_FULL)
    hsv[..., 0] += np.uint8(21)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL)


def direct_equalize(image, reference):
    ycc = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)
    ycc[..., 0] = cv2.equalizeHist(np.ascontiguousarray(ycc[..., 0]))
    return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)


def direct_threshold(image, reference):
    return cv2.threshold(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), 128, 255, cv2.THRESH_BINARY)[1]


CASES = [
    ("grayscale", ours(Grayscale()), lambda image, reference: cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)),
    ("sepia", ours(Sepia()), lambda image, reference: cv2.transform(image, _SEPIA)),
    ("invert", ours(Invert()), lambda image, reference: cv2.bitwise_not(image)),
    ("brightness +20%", ours(Brightness(20)),
     lambda image, reference: cv2.convertScaleAbs(image, alpha=1.2)),
    ("contrast +30%", ours(Contrast(30)), direct_contrast),
    ("saturation +30%", ours(Saturation(30)), direct_saturation),
    ("hue shift +30°", ours(HueShift(30)), direct_hue),
    ("warmer 20%", ours(Temperature(20)),
     lambda image, reference: cv2.multiply(image, (1.1, 1.0, 0.9, 0.0))),
    ("gamma 2.2", ours(Gamma(2.2)), lambda image, reference: cv2.LUT(image, _GAMMA_22)),
    ("equalize", ours(Equalize()), direct_equalize),
    ("posterize 4 levels", ours(Posterize(4)), lambda image, reference: cv2.LUT(image, _POSTER_4)),
    ("threshold 128", ours(Threshold(128)), direct_threshold),
]
