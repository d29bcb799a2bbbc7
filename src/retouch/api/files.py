"""Stored files: outputs by their unguessable names (or, with ``RETOUCH_URL_TTL``, only
through the signed link they were delivered with), lent inputs only by signed link."""

import time

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from retouch.api.deps import get_service
from retouch.errors import RetouchError
from retouch.service import EditService
from retouch.storage.base import INPUTS

router = APIRouter()
_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
# Names never change content, so caches may keep them for good.
_CACHE = "public, max-age=31536000, immutable"
# A lent input is for one provider, for minutes: nobody should keep a copy.
_NO_STORE = "private, no-store"


class FileNotFound(RetouchError):
    status = 404
    type = "invalid_request_error"
    code = "file_not_found"


class LinkRefused(RetouchError):
    status = 403
    type = "invalid_request_error"
    code = "invalid_signature"


@router.get("/files/{name}", tags=["files"])
async def get_file(name: str, expires: str | None = None, signature: str | None = None,
                   service: EditService = Depends(get_service)) -> Response:
    """An output image; when output URLs expire (``RETOUCH_URL_TTL``), only through its link."""
    signed = service.settings.url_ttl > 0
    if signed:
        _check_link(service, service.storage.url_path(name), expires, signature)
    data = await service.storage.get(name)
    if data is None:
        raise FileNotFound(f"No file named {name!r}; it may have expired.", param="name")
    # A signed link stops working at `expires`; no cache may serve it for longer.
    cache = f"private, max-age={max(0, int(expires) - int(time.time()))}" if signed else _CACHE
    return Response(data, media_type=_type_of(name), headers={"cache-control": cache})


@router.get("/files/inputs/{name}", tags=["files"], include_in_schema=False)
async def get_lent_input(name: str, expires: str | None = None, signature: str | None = None,
                         service: EditService = Depends(get_service)) -> Response:
    """An input image lent to a provider for one job, through the link we signed for it."""
    _check_link(service, service.storage.url_path(name, area=INPUTS), expires, signature)
    data = await service.storage.get(name, area=INPUTS)
    if data is None:
        raise FileNotFound(f"No file named {name!r}; the job it was lent for has ended.", param="name")
    return Response(data, media_type=_type_of(name), headers={"cache-control": _NO_STORE})


def _check_link(service: EditService, path: str, expires: str | None, signature: str | None) -> None:
    if expires is None or signature is None:
        raise LinkRefused("This file is served only through a signed link; the URL lacks its "
                          "'expires' and 'signature'. Use the URL exactly as it was given.",
                          param="signature")
    if not service.signer.verify(path, expires, signature):
        raise LinkRefused("This link is not valid: its signature does not match or it has "
                          "expired.", param="signature")


def _type_of(name: str) -> str:
    return _TYPES[name.rsplit(".", 1)[1]]
