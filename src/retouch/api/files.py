"""Stored outputs, served by their unguessable names."""

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from retouch.api.deps import get_service
from retouch.errors import RetouchError
from retouch.service import EditService

router = APIRouter()
_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
# Names never change content, so caches may keep them for good.
_CACHE = "public, max-age=31536000, immutable"


class FileNotFound(RetouchError):
    status = 404
    type = "invalid_request_error"
    code = "file_not_found"


@router.get("/files/{name}", tags=["files"])
async def get_file(name: str, service: EditService = Depends(get_service)) -> Response:
    data = await service.storage.get(name)
    if data is None:
        raise FileNotFound(f"No file named {name!r}; it may have expired.", param="name")
    content_type = _TYPES[name.rsplit(".", 1)[1]]
    return Response(data, media_type=content_type, headers={"cache-control": _CACHE})
