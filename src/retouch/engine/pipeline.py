"""Running a list of operations over decoded inputs: the engine's one entry point.

Besides applying the operations in order it handles what every request shares: the
mask (mask operations read it; other edits are kept inside it), ``background:
transparent`` and the requested ``size``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from retouch.engine.ops import Context, Operation, merge_alpha, split_alpha
from retouch.engine.ops.background import RemoveBackground
from retouch.engine.ops.geometry import fit_inside
from retouch.errors import UnsupportedInstructionError
from retouch.inputs import InputImage


@dataclass
class Outcome:
    pixels: np.ndarray
    applied: list[str]


class DecodedInputs(Sequence):
    """Input images decoded on first access, so unreferenced inputs cost nothing."""

    def __init__(self, images: list[InputImage]) -> None:
        self._images = images
        self._decoded: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._images)

    def __getitem__(self, index):  # type: ignore[override]
        index = range(len(self._images))[index]
        if index not in self._decoded:
            self._decoded[index] = self._images[index].pixels()
        return self._decoded[index]


def edit_region(mask: InputImage | None) -> np.ndarray | None:
    """True where the mask says "edit here": transparent pixels (OpenAI's convention);
    for a mask without alpha, white pixels (the usual inpainting convention)."""
    if mask is None:
        return None
    pixels = mask.pixels()
    if pixels.shape[2] == 4:
        return pixels[..., 3] < 128
    return pixels.mean(axis=2) > 127


def run(operations: list[Operation], images: list[InputImage], *, mask: InputImage | None = None,
        background: str | None = None, size: tuple[int, int] | None = None) -> Outcome:
    """Apply ``operations`` to the first image (or to the canvas the first one creates)."""
    region = edit_region(mask)
    inputs: Sequence[np.ndarray] = DecodedInputs(images)
    steps = list(operations)
    if images:
        canvas = inputs[0]
    else:  # a generation: its first operation creates the canvas the others work on
        canvas = steps.pop(0).apply(None, Context([]))
        inputs = [canvas]
    original, ctx = canvas, Context(inputs, lambda: region)
    for operation in steps:
        canvas = operation.apply(canvas, ctx)
    applied = [op.describe() for op in operations]
    if region is not None and not any(_reads_mask(op) for op in operations):
        canvas = keep_inside_region(original, canvas, region)
        applied.append("only inside the mask")
    if background == "transparent" and split_alpha(canvas)[1] is None:
        remover = RemoveBackground()
        canvas = remover.apply(canvas, ctx)
        applied.append(remover.describe())
    if size is not None and images:
        canvas = fit_inside(canvas, *size)
    return Outcome(canvas, applied)


def _reads_mask(operation: Operation) -> bool:
    return operation.needs_mask or getattr(operation, "reads_mask", False)


def keep_inside_region(original: np.ndarray, edited: np.ndarray, region: np.ndarray) -> np.ndarray:
    """The edit where ``region`` is True, the original elsewhere. Edits that change the
    image's size cannot be confined to a mask and are refused."""
    if edited.shape[:2] != original.shape[:2]:
        raise UnsupportedInstructionError(
            "A mask keeps an edit inside its region, but this edit changes the image's size "
            f"({original.shape[1]}x{original.shape[0]} → {edited.shape[1]}x{edited.shape[0]}). "
            "Send the mask with edits that keep the size, or leave the mask out.",
            param="mask")
    before, after = _same_layout(original, edited)
    return np.where(region[..., None], after, before) if after.ndim == 3 else np.where(region, after, before)


def _same_layout(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays in one channel layout (gray, RGB or RGBA), so they can be mixed."""
    channels = max(_channels(a), _channels(b))
    return _to_channels(a, channels), _to_channels(b, channels)


def _channels(pixels: np.ndarray) -> int:
    return 1 if pixels.ndim == 2 else pixels.shape[2]


def _to_channels(pixels: np.ndarray, channels: int) -> np.ndarray:
    if _channels(pixels) == channels:
        return pixels
    color, alpha = split_alpha(pixels)
    if color.ndim == 2:
        color = np.repeat(color[..., None], 3, axis=2)
    if channels == 4 and alpha is None:
        alpha = np.full(color.shape[:2], 255, np.uint8)
    return merge_alpha(color, alpha) if channels == 4 else color
