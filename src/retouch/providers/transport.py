"""How input images reach an upstream: inline (a data URL, bare base64) or as a
short-lived signed link to retouch's own storage.

Links keep request bodies small (a 20 MB photo is a 100-byte URL instead of 27 MB of
base64) and are used when retouch has a public base URL the provider can reach
(``RETOUCH_PUBLIC_URL``, see ``config.Settings.input_links``) and the provider fetches
images by URL. Each job's links are deleted when the job ends; they also expire on their
own after ``RETOUCH_INPUT_LINK_TTL`` seconds.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass

import anyio

from retouch.engine.codecs import encode
from retouch.inputs import InputImage
from retouch.storage.base import INPUTS, Storage

log = logging.getLogger("retouch.providers.transport")

PORTABLE_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


@dataclass(frozen=True)
class Payload:
    """One image as an upstream will receive it: encoded bytes and their type."""

    data: bytes
    content_type: str


def portable(image: InputImage) -> Payload:
    """The original bytes when every provider reads the format (PNG, JPEG, WebP); other
    formats (GIF, BMP, TIFF) re-encoded as PNG. May decode: call it off the event loop."""
    content_type = PORTABLE_TYPES.get(image.format)
    if content_type is not None:
        return Payload(image.read_bytes(), content_type)
    return Payload(encode(image.pixels(), "png"), "image/png")


def data_url(payload: Payload) -> str:
    return f"data:{payload.content_type};base64,{bare_base64(payload)}"


def bare_base64(payload: Payload) -> str:
    return base64.b64encode(payload.data).decode("ascii")


class InputLinks:
    """Lends one job's input images to providers through links to our own storage.

    ``link`` stores a payload in the storage's ``inputs`` area and returns an absolute
    URL valid for ``ttl_s`` seconds (signed by retouch below ``public_url``, or presigned
    by the bucket); ``close`` deletes everything this job lent.
    """

    def __init__(self, storage: Storage, public_url: str, ttl_s: float) -> None:
        self.storage = storage
        self.public_url = public_url.rstrip("/")
        self.ttl_s = ttl_s
        self._names: list[str] = []

    async def link(self, payload: Payload) -> str:
        stored = await self.storage.put(payload.data, payload.content_type, area=INPUTS)
        self._names.append(stored.name)
        return await self.storage.lend_url(stored.name, base_url=self.public_url, ttl_s=self.ttl_s)

    async def close(self) -> None:
        """Delete the lent files, even while the job is being cancelled."""
        with anyio.CancelScope(shield=True):
            for name in self._names:
                try:
                    await self.storage.delete(name, area=INPUTS)
                except OSError as exc:  # retention removes it later
                    log.warning("could not delete lent input %s: %s", name, exc)
        self._names.clear()
