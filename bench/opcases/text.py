"""Text drawing against Pillow's ImageDraw on the whole image."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from retouch.engine.ops import Context
from retouch.engine.ops.text import AddText

CAPTION = AddText("SALE - 50% off", color=(255, 0, 0), color_name="red", size=8.0)
WATERMARK = AddText("(c) ACME", position="bottom-right", size=5.0, opacity=50, watermark=True)


def _layout(image: np.ndarray, fraction: float) -> tuple[int, int, int, int]:
    height, width = image.shape[:2]
    px = round(height * fraction)
    return height, width, px, round(0.03 * min(height, width))


def direct_caption(image, reference):
    """Opaque outlined text drawn straight onto the RGB image."""
    height, width, px, margin = _layout(image, 0.08)
    picture = Image.fromarray(image)
    ImageDraw.Draw(picture).text((width // 2, height - margin), "SALE - 50% off", fill=(255, 0, 0),
                                 font=ImageFont.load_default(size=px), anchor="md",
                                 stroke_width=max(1, round(px / 24)), stroke_fill=(0, 0, 0))
    return np.asarray(picture)


def direct_watermark(image, reference):
    """Half-transparent text: drawn on a layer, then alpha-composited."""
    height, width, px, margin = _layout(image, 0.05)
    picture = Image.fromarray(image).convert("RGBA")
    layer = Image.new("RGBA", picture.size)
    ImageDraw.Draw(layer).text((width - margin, height - margin), "(c) ACME", fill=(255, 255, 255, 128),
                               font=ImageFont.load_default(size=px), anchor="rd",
                               stroke_width=max(1, round(px / 24)), stroke_fill=(0, 0, 0, 77))
    return np.asarray(Image.alpha_composite(picture, layer).convert("RGB"))


def ours(op):
    return lambda image, reference: op.apply(image, Context([image, reference]))


CASES = [
    ("caption", ours(CAPTION), direct_caption),
    ("watermark", ours(WATERMARK), direct_watermark),
]
