"""New canvases for generations: solid colours and linear gradients."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from retouch.engine.ops import Context, Operation

DEFAULT_SIZE = (1024, 1024)


@dataclass(frozen=True)
class SolidCanvas(Operation):
    """A new width×height canvas of one colour (RGB)."""

    color: tuple[int, int, int]
    name: str
    size: tuple[int, int] = DEFAULT_SIZE
    images_needed = 0

    def apply(self, canvas: np.ndarray | None, ctx: Context) -> np.ndarray:
        width, height = self.size
        return np.full((height, width, 3), self.color, dtype=np.uint8)

    def describe(self) -> str:
        return f"{self.size[0]}x{self.size[1]} {self.name} canvas"


@dataclass(frozen=True)
class GradientCanvas(Operation):
    """A new canvas fading from ``start`` to ``end`` (left→right, or top→bottom)."""

    start: tuple[int, int, int]
    end: tuple[int, int, int]
    names: tuple[str, str]
    size: tuple[int, int] = DEFAULT_SIZE
    vertical: bool = False
    images_needed = 0

    def apply(self, canvas: np.ndarray | None, ctx: Context) -> np.ndarray:
        width, height = self.size
        steps = height if self.vertical else width
        ramp = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
        line = (np.array(self.start) * (1 - ramp) + np.array(self.end) * ramp).round().astype(np.uint8)
        if self.vertical:
            return np.ascontiguousarray(np.broadcast_to(line[:, None, :], (height, width, 3)))
        return np.ascontiguousarray(np.broadcast_to(line[None, :, :], (height, width, 3)))

    def describe(self) -> str:
        direction = "top to bottom" if self.vertical else "left to right"
        return f"{self.size[0]}x{self.size[1]} gradient {self.names[0]} to {self.names[1]}, {direction}"
