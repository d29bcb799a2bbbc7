"""``retouch/basic``: the built-in CPU engine behind the provider contract.

The prompt is read into operations first (a 422 costs no decoding), then the
referenced images are decoded and the operations applied in a worker thread.
"""

from __future__ import annotations

import functools
import os

import anyio

from retouch.engine import pipeline
from retouch.engine.generation import read_generation
from retouch.engine.instructions import read_instructions
from retouch.engine.ops import Operation
from retouch.engine.phrases import ordinal_name
from retouch.errors import InvalidRequestError
from retouch.providers.base import EditJob, EditModel, EditResult, OutputImage


class BasicEditModel(EditModel):
    """Deterministic edits from plain-English instructions; no weights, no keys."""

    provider = "basic"
    max_input_images = 16
    min_input_images = 1
    supports_generation = True
    supports_mask = True
    deterministic = True
    default_price_per_image = 0.0
    ignored_params = frozenset({"quality", "input_fidelity", "seed", "user"})

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.threads = int(self.config.get("threads") or os.cpu_count() or 1)
        self._limiter: anyio.CapacityLimiter | None = None

    async def edit(self, job: EditJob) -> EditResult:
        # Reading a long prompt takes milliseconds of regular expressions: not on the loop.
        if job.images:
            operations = await anyio.to_thread.run_sync(read_instructions, job.prompt)
        else:
            operations = await anyio.to_thread.run_sync(read_generation, job.prompt, job.size)
        check_inputs(operations, len(job.images), has_mask=job.mask is not None)
        if self._limiter is None:
            # One job per core: more threads would only add memory, not speed.
            self._limiter = anyio.CapacityLimiter(self.threads)
        outcome = await anyio.to_thread.run_sync(
            functools.partial(pipeline.run, operations, job.images, mask=job.mask,
                              background=job.background, size=job.size),
            limiter=self._limiter)
        # Deterministic: n results are the same image, shared rather than copied.
        return EditResult(images=[OutputImage(pixels=outcome.pixels)] * job.n,
                          revised_prompt="; ".join(outcome.applied))


def check_inputs(operations: list[Operation], given: int, *, has_mask: bool) -> None:
    """Each operation has the images and the mask it reads, or a 400 says what is missing."""
    # A generation's canvas stands in for the first image.
    available = given if given else 1
    for operation in operations:
        if operation.needs_mask and not has_mask:
            raise InvalidRequestError(
                f"'{operation.describe()}' works on the masked region, but no mask was sent. "
                "Send a mask (transparent where to edit) with the same size as the first image.",
                param="mask", code="missing_mask")
        if operation.images_needed > available:
            raise _missing_image(operation, operation.images_needed, given)


def _missing_image(operation: Operation, needed: int, given: int) -> InvalidRequestError:
    return InvalidRequestError(
        f"'{operation.describe()}' needs a {ordinal_name(needed - 1)} image, but only {given} "
        f"image{'s' if given != 1 else ''} {'were' if given != 1 else 'was'} sent. "
        "Add it as another image (image[] or image_urls).",
        param="image",
        code="missing_image",
    )
