"""A third-party backend, as another package would ship it through an entry point."""

from __future__ import annotations

import os
import threading

import anyio

from retouch.providers.base import Availability, EditJob, EditModel, EditResult


class KeyedModel(EditModel):
    provider = "test-keyed"
    supports_generation = True

    def availability(self) -> Availability:
        if os.environ.get("ACME_API_KEY"):
            return Availability(True)
        return Availability(False, reason="ACME_API_KEY is not set", fix="set ACME_API_KEY to your Acme key")

    async def edit(self, job: EditJob) -> EditResult:
        raise AssertionError("must not be called while unavailable")


class SlowModel(EditModel):
    """Waits until cancelled, recording both moments (for the disconnect test)."""

    provider = "test-slow"
    supports_generation = True
    started = threading.Event()
    cancelled = threading.Event()

    async def edit(self, job: EditJob) -> EditResult:
        SlowModel.started.set()
        try:
            await anyio.sleep(60)
        except anyio.get_cancelled_exc_class():
            SlowModel.cancelled.set()
            raise
        raise AssertionError("the client should have gone away long ago")
