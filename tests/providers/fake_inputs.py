"""How the fake upstreams read an input image they are handed by reference.

Providers that take images as URLs accept both ``data:`` URLs and ``http(s)`` URLs
they download themselves; the fakes do the same, so a test can hand them a
short-lived signed URL to retouch's own storage and see the bytes arrive.
"""

from __future__ import annotations

import base64
import binascii

import httpx

DOWNLOAD_TIMEOUT_S = 5.0


class ImageRefError(ValueError):
    """The reference is neither a base64 data URL nor a URL that answered 200."""


async def image_bytes(ref: str) -> bytes:
    """The bytes behind a ``data:…;base64,`` URL or an ``http(s)://`` URL.

    A download follows no redirects (a provider fetching a signed URL gets the object or
    an error, never a detour) and gives up after a few seconds.
    """
    if ref.startswith("data:"):
        return _data_url_bytes(ref)
    if ref.startswith(("http://", "https://")):
        return await _download(ref)
    raise ImageRefError(f"not a data: or http(s) URL: {ref[:40]!r}")


def is_image_ref(value: object) -> bool:
    return isinstance(value, str) and value.startswith(("data:", "http://", "https://"))


def _data_url_bytes(ref: str) -> bytes:
    header, _, payload = ref.partition(",")
    if not header.endswith(";base64"):
        raise ImageRefError(f"data URL is not base64: {header[:40]!r}")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageRefError("data URL payload is not valid base64") from exc


async def _download(url: str) -> bytes:
    try:
        async with httpx.AsyncClient(timeout=DOWNLOAD_TIMEOUT_S, follow_redirects=False) as client:
            response = await client.get(url)
    except httpx.HTTPError as exc:
        raise ImageRefError(f"could not download {url} ({type(exc).__name__})") from exc
    if response.status_code != 200:
        raise ImageRefError(f"downloading {url} answered HTTP {response.status_code}")
    return response.content
