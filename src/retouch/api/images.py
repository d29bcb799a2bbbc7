"""``POST /v1/images/edits`` and ``POST /v1/images/generations``."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from retouch.api.deps import authenticate, base_url, service_of
from retouch.api.guard import Stream, admit, serve_guarded
from retouch.api.requests import read_edit_request, read_generation_request
from retouch.api.streaming import completed_events
from retouch.api.usage import recording
from retouch.auth import Principal
from retouch.db.usage import UsageEntry
from retouch.idempotency import fingerprint_edit, fingerprint_params
from retouch.protocol import ImageParams, ImagesResponse
from retouch.service import Served

router = APIRouter(tags=["images"])

_EDIT_DOC = {
    "requestBody": {
        "content": {
            "application/json": {"schema": {"type": "object", "description":
                "Siraya form {model, prompt, image_urls, n, output_format} or OpenAI form "
                "{model, prompt, images: [{image_url}], mask: {image_url}, …}."}},
            "multipart/form-data": {"schema": {"type": "object", "description":
                "OpenAI client form: image / image[] files, mask, image_urls[], scalars as text."}},
        }
    }
}


@router.post("/v1/images/edits", response_model=ImagesResponse, openapi_extra=_EDIT_DOC)
async def create_edit(request: Request, principal: Principal = Depends(authenticate)):
    """Edit the first image as the prompt says, using the others as references."""
    service = service_of(request)
    settings = service.settings
    async with recording(request, principal, "edits") as entry:
        rate_headers = await admit(request, principal)
        edit = await read_edit_request(request, settings.max_request_bytes, settings.max_images)
        params = _as_b64_when_streaming(edit.params)
        entry.model, entry.n = params.model or settings.default_model, params.n
        ready = await service.ready_edit(edit, principal)
        return await serve_guarded(
            request, principal, entry, n=params.n, price_per_image=ready.model.price_per_image,
            work=lambda partials: service.run(ready, _url_base(request, params), partials),
            answer=lambda served: _answer(served, params, "image_edit", entry),
            fingerprint=lambda: fingerprint_edit(edit, "edits"), rate_headers=rate_headers,
            stream=_stream_of(params, "image_edit"))


@router.post("/v1/images/generations", response_model=ImagesResponse)
async def create_generation(request: Request, principal: Principal = Depends(authenticate)):
    """Create images from a prompt alone."""
    service = service_of(request)
    async with recording(request, principal, "generations") as entry:
        rate_headers = await admit(request, principal)
        params = await read_generation_request(request, service.settings.max_request_bytes)
        params = _as_b64_when_streaming(params)
        entry.model, entry.n = params.model or service.settings.default_model, params.n
        ready = service.ready_generation(params, principal)
        return await serve_guarded(
            request, principal, entry, n=params.n, price_per_image=ready.model.price_per_image,
            work=lambda partials: service.run(ready, _url_base(request, params), partials),
            answer=lambda served: _answer(served, params, "image_generation", entry),
            fingerprint=lambda: fingerprint_params(params, "generations"), rate_headers=rate_headers,
            stream=_stream_of(params, "image_generation"))


def _stream_of(params: ImageParams, prefix: str) -> Stream | None:
    """Streams that ask for partial images are answered while the job runs."""
    return Stream(params, prefix) if params.stream and params.partial_images else None


def _url_base(request: Request, params: ImageParams) -> str:
    # Only URL answers need it, and working it out is a noticeable part of a fast request.
    return base_url(request) if params.delivery == "url" else ""


def _as_b64_when_streaming(params: ImageParams) -> ImageParams:
    # Streamed events carry the image inline, as OpenAI's do.
    if params.stream:
        params.response_format = "b64_json"
    return params


def _answer(served: Served, params: ImageParams, event_prefix: str, entry: UsageEntry) -> Response:
    headers = _headers(served)
    entry.served_by, entry.images_out = served.model, len(served.response.data)
    entry.cost_usd, entry.upstream_ms = served.cost_usd, served.upstream_ms
    if params.stream:
        # The events are all known by now: one body, which an idempotent request can keep.
        body = "".join(completed_events(served.response, event_prefix)).encode()
        media_type = "text/event-stream"
    else:
        # orjson writes a 0.5 MB base64 string in 0.05 ms, pydantic's encoder in 0.8 ms and
        # JSONResponse's json.dumps in 1.7 ms: all of it on the event loop.
        body = orjson.dumps(served.response.model_dump(exclude_none=True))
        media_type = "application/json"
    entry.bytes_out = len(body)
    return Response(body, media_type=media_type, headers=headers)


def _headers(served: Served) -> dict[str, str]:
    """Which model served the request, what it cost, and any parameter it had to drop."""
    headers = {"x-retouch-model": served.model}
    if served.cost_usd is not None:
        headers["x-retouch-cost-usd"] = f"{served.cost_usd:.6f}"
    if served.dropped_params:
        headers["x-retouch-dropped-params"] = ", ".join(served.dropped_params)
    if served.seed is not None:
        headers["x-retouch-seed"] = str(served.seed)
    return headers
