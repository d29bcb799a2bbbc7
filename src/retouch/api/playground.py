"""The browser pages: the playground at ``/``, the models directory at ``/models``, and
their scripts and styles under ``/playground/``.

Plain files shipped inside the package (``retouch/playground/``), served as they are: no
build step, nothing fetched from another origin. The pages need no key to load; they call
the API from the browser with the key the user typed. None of this is in the OpenAPI schema.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import Response

from retouch.errors import RetouchError

router = APIRouter(include_in_schema=False)

ASSET_PREFIX = "/playground"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# The file names never change between releases, so browsers keep them but check the ETag
# on every use: an upgrade shows at once, an unchanged file costs a 304.
_CACHE = "no-cache"
# Scripts, styles and API calls from this origin only; images may also be data:, blob:
# (uploads, results) or an http(s) URL the user typed as an input.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data: blob: http: https:; object-src 'none'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'")


class AssetNotFound(RetouchError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


@cache
def assets() -> dict[str, Asset]:
    """Every file of the playground by name, read once from the package."""
    folder = resources.files("retouch") / "playground"
    found = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in _TYPES:
            body = entry.read_bytes()
            found[entry.name] = Asset(body, _TYPES[suffix], f'"{hashlib.sha256(body).hexdigest()[:32]}"')
    return found


@router.get("/")
async def playground_page(request: Request) -> Response:
    return _serve("index.html", request)


@router.get("/models")
async def models_page(request: Request) -> Response:
    return _serve("models.html", request)


@router.get(ASSET_PREFIX + "/{name}")
async def playground_asset(name: str, request: Request) -> Response:
    if name.endswith(".html"):
        raise AssetNotFound(f"{name!r} is a page: open / or /models.", param="name")
    return _serve(name, request)


def _serve(name: str, request: Request) -> Response:
    asset = assets().get(name)
    if asset is None:
        raise AssetNotFound(f"No playground file named {name!r}.", param="name")
    headers = {"etag": asset.etag, "cache-control": _CACHE, "x-content-type-options": "nosniff"}
    if asset.media_type.startswith("text/html"):
        headers |= {"content-security-policy": _CSP, "referrer-policy": "no-referrer"}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)
