"""Encode engine pixels (numpy uint8, HxW / HxWx3 RGB / HxWx4 RGBA) as PNG, JPEG or WebP.

Codec choices, measured with ``bench/encoding.py`` (1024x1024 RGB, medians of 15,
2-core x86 VM, Pillow 13 + zlib-ng 2.3, OpenCV 5.0 + libpng 1.6 / zlib 1.2.11):

* PNG -- OpenCV, filter Up, zlib strategy Z_RLE. Against Pillow's default save
  (level 6, adaptive filters): smooth photo-like image 507 -> 41 ms (12.5x),
  1.46 MB -> 1.45 MB (0.99x); uniform noise 148 -> 34 ms (4.3x), 1.00x the size.
  Rejected while exploring: Pillow ``compress_level=1`` (4-5x but 1.19x the size on
  the photo, and only 1.0-1.5x faster on noise: its adaptive filter pass costs as
  much as deflate); Huffman-only (as fast, but a flat graphic came out 29x Pillow's
  size, where RLE still collapses flat runs: 1.8x, 25 KB); Paeth or adaptive
  filters (3.0x / 3.4x on noise, too close to the 3x goal).
* JPEG -- OpenCV (libjpeg-turbo): byte-identical to Pillow at the same quality and
  a little faster (q90: 3.3 vs 4.0 ms on the photo, 7.4 vs 8.0 ms on noise).
* WebP -- Pillow with ``method=0``: ~3x faster than the default method 4 at q90
  (29 vs 94 ms on the photo, 106 vs 206 ms on noise) for +4% / +1% bytes and
  -0.3 dB PSNR. OpenCV has no method knob and was as slow as method 4.

No codec here writes metadata: the PNG is IHDR/IDAT/IEND only, the JPEG carries
a JFIF header and no EXIF/XMP/comment, the WebP no EXIF/XMP/ICC chunk.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

OUTPUT_FORMATS = ("png", "jpeg", "webp")
CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
DEFAULT_QUALITY = {"jpeg": 90, "webp": 90}

_PNG_PARAMS = [
    cv2.IMWRITE_PNG_COMPRESSION, 1,  # zlib ignores the level under Z_RLE (any >0)
    cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
    cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP,
]
_TO_OPENCV = {3: cv2.COLOR_RGB2BGR, 4: cv2.COLOR_RGBA2BGRA}


def encode(pixels: np.ndarray, fmt: str, *, quality: int | None = None) -> bytes:
    """Encode pixels as ``png``, ``jpeg`` or ``webp`` and return the file's bytes.

    ``quality`` (0-100) applies to jpeg and webp (default 90 for both) and is
    ignored for png, which is lossless. JPEG cannot carry alpha, so RGBA is
    flattened onto white first. The output carries no metadata.
    Raises ValueError for an unknown format, a bad quality or unsupported pixels.
    """
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; expected one of {OUTPUT_FORMATS}")
    _check_pixels(pixels)
    if fmt == "png":
        return _opencv_encode(".png", pixels, _PNG_PARAMS)
    quality = _check_quality(DEFAULT_QUALITY[fmt] if quality is None else quality)
    if fmt == "jpeg":
        return _opencv_encode(".jpg", flatten_alpha(pixels), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return _webp(pixels, quality)


def flatten_alpha(pixels: np.ndarray, background=(255, 255, 255)) -> np.ndarray:
    """Composite RGBA over an opaque ``background`` colour, giving RGB.

    Any other shape is returned unchanged. Rounds to nearest, so alpha 255 keeps
    the colour exactly and alpha 0 gives exactly the background.
    """
    if pixels.ndim != 3 or pixels.shape[2] != 4:
        return pixels
    alpha = pixels[..., 3:].astype(np.uint32)
    colour = pixels[..., :3].astype(np.uint32)
    bg = np.asarray(background, dtype=np.uint32).reshape(1, 1, 3)
    blended = (colour * alpha + bg * (255 - alpha) + 127) // 255
    return blended.astype(np.uint8)


def _check_pixels(pixels: np.ndarray) -> None:
    """Reject anything that is not uint8 HxW, HxWx3 or HxWx4."""
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8:
        raise ValueError("pixels must be a numpy uint8 array")
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] in (3, 4))):
        raise ValueError(f"pixels must be HxW, HxWx3 or HxWx4, got shape {pixels.shape}")
    if pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise ValueError(f"pixels must not be empty, got shape {pixels.shape}")


def _check_quality(quality: int) -> int:
    """Return quality as an int in 0..100, or raise ValueError."""
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)):
        raise ValueError(f"quality must be an integer 0-100, got {quality!r}")
    if not 0 <= quality <= 100:
        raise ValueError(f"quality must be 0-100, got {quality}")
    return int(quality)


def _opencv_encode(ext: str, pixels: np.ndarray, params: list[int]) -> bytes:
    """Encode with OpenCV, which expects BGR(A) channel order."""
    if pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels, _TO_OPENCV[pixels.shape[2]])
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(pixels), params)
    if not ok:  # pragma: no cover - OpenCV only fails on inputs _check_pixels rejects
        raise ValueError(f"OpenCV could not encode {ext} from shape {pixels.shape}")
    return buf.tobytes()


def _webp(pixels: np.ndarray, quality: int) -> bytes:
    """Encode WebP with Pillow at its fastest method (see module docstring)."""
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(out, "WEBP", quality=quality, method=0)
    return out.getvalue()
