"""``retouch/basic``: the built-in CPU engine behind the provider contract.

The prompt is read into operations first (a 422 costs no decoding), then the
referenced images are decoded and the operations applied in a worker thread.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import anyio
import numpy as np

from retouch.engine.generation import read_generation
from retouch.engine.instructions import read_instructions
from retouch.engine.ops import Context, Operation
from retouch.engine.ops.geometry import fit_inside
from retouch.errors import InvalidRequestError
from retouch.inputs import InputImage
from retouch.providers.base import EditJob, EditModel, EditResult, OutputImage

_ORDINALS = ["first", "second", "third", "fourth", "fifth"]


class BasicEditModel(EditModel):
    """Deterministic edits from plain-English instructions; no weights, no keys."""

    provider = "basic"
    max_input_images = 16
    min_input_images = 1
    supports_generation = True
    deterministic = True
    ignored_params = frozenset({"quality", "input_fidelity", "seed", "user"})

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.threads = int(self.config.get("threads") or os.cpu_count() or 1)
        self._limiter: anyio.CapacityLimiter | None = None

    async def edit(self, job: EditJob) -> EditResult:
        if job.images:
            operations = read_instructions(job.prompt)
            _check_enough_images(operations, len(job.images))
        else:
            operations = [read_generation(job.prompt, job.size)]
        if self._limiter is None:
            # One job per core: more threads would only add memory, not speed.
            self._limiter = anyio.CapacityLimiter(self.threads)
        pixels = await anyio.to_thread.run_sync(run_operations, operations, job, limiter=self._limiter)
        revised = "; ".join(op.describe() for op in operations)
        # Deterministic: n results are the same image, shared rather than copied.
        return EditResult(images=[OutputImage(pixels=pixels)] * job.n, revised_prompt=revised)


def run_operations(operations: list[Operation], job: EditJob) -> np.ndarray:
    """Decode what the operations read, apply them in order, then honour ``size``.

    Generations start from no canvas: their first operation creates one."""
    inputs = DecodedInputs(job.images)
    ctx = Context(inputs)
    canvas = inputs[0] if job.images else None
    for operation in operations:
        canvas = operation.apply(canvas, ctx)
    if job.size is not None and job.images:
        canvas = fit_inside(canvas, *job.size)
    return canvas


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


def _check_enough_images(operations: list[Operation], given: int) -> None:
    for operation in operations:
        if operation.images_needed > given:
            needed = operation.images_needed
            name = _ORDINALS[needed - 1] if needed <= len(_ORDINALS) else f"#{needed}"
            raise InvalidRequestError(
                f"'{operation.describe()}' needs a {name} image, but only {given} "
                f"image{'s' if given != 1 else ''} {'were' if given != 1 else 'was'} sent. "
                "Add it as another image (image[] or image_urls).",
                param="image",
                code="missing_image",
            )
