"""Every spelling of an image request real clients send → ``EditRequest``.

- JSON, Siraya form: ``{model, prompt, image_urls: [...], n, output_format}``
- JSON, OpenAI form: ``images: [{"image_url": "https://…" | "data:…"}]``, ``mask: {"image_url"}``
- multipart, as the official ``openai`` client sends it: ``image`` (one file), repeated
  ``image[]``, ``mask``, ``image_urls[]`` / ``image_urls``; ``extra_body`` dicts arrive
  as ``key[sub]``; every scalar is text.

Order: uploaded files first, then URLs, each in the order given.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.requests import Request

from retouch.errors import InvalidRequestError, PayloadTooLargeError
from retouch.protocol import (
    EditRequest,
    ImageParams,
    ImageSource,
    ImageUrl,
    UploadedImage,
)

_IMAGE_FILE_FIELDS = ("image", "image[]", "images", "images[]")
_URL_FIELDS = ("image_urls", "image_urls[]", "image_url")
_BRACKETED = re.compile(r"^(?P<name>[^\[\]]+)\[(?P<key>[^\[\]]*)\]$")


async def read_edit_request(request: Request, max_bytes: int, max_files: int) -> EditRequest:
    """Parse JSON or multipart (or a urlencoded form of scalars and URLs)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    _check_declared_length(request, max_bytes)
    if content_type == "application/json" or content_type.endswith("+json"):
        return edit_from_json(await read_json(request, max_bytes))
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await request.form(max_files=max_files + 1, max_fields=1000)
        return edit_from_form(list(form.multi_items()))
    raise InvalidRequestError(
        f"Unsupported Content-Type {content_type or '(none)'!r}: send application/json or "
        "multipart/form-data.", code="unsupported_content_type")


async def read_generation_request(request: Request, max_bytes: int) -> ImageParams:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    _check_declared_length(request, max_bytes)
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await request.form()
        return params_from(_fields_from_form(list(form.multi_items())))
    return params_from(await read_json(request, max_bytes))


def _check_declared_length(request: Request, max_bytes: int) -> None:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLargeError(
            f"The request body is {int(declared):,} bytes; the limit is {max_bytes:,} "
            "(RETOUCH_MAX_REQUEST_BYTES).")


async def read_json(request: Request, max_bytes: int) -> dict[str, Any]:
    """The JSON object in the body, read with a byte cap."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLargeError(f"The request body exceeds {max_bytes:,} bytes "
                                       "(RETOUCH_MAX_REQUEST_BYTES).")
        chunks.append(chunk)
    try:
        body = orjson.loads(b"".join(chunks) or b"null")
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"The body is not valid JSON ({exc}).", code="invalid_json") from exc
    if not isinstance(body, dict):
        raise InvalidRequestError("The JSON body must be an object.", code="invalid_json")
    return body


def edit_from_json(body: dict[str, Any]) -> EditRequest:
    body = dict(body)
    images: list[ImageSource] = []
    for field in ("images", "image", "image_urls", "image_url"):
        images += [ImageUrl(url, field) for url in _json_urls(body.pop(field, None), field)]
    mask_urls = _json_urls(body.pop("mask", None), "mask")
    if len(mask_urls) > 1:
        raise InvalidRequestError("Send one mask.", param="mask")
    mask = ImageUrl(mask_urls[0], "mask") if mask_urls else None
    return EditRequest(params=params_from(body), images=images, mask=mask)


def _json_urls(value: Any, field: str) -> list[str]:
    """URLs from a string, ``{"image_url": …}``, ``{"url": …}`` or a list of those."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [_json_url(item, field) for item in items]


def _json_url(item: Any, field: str) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        url = item.get("image_url", item.get("url"))
        if isinstance(url, dict):  # chat-style {"image_url": {"url": …}}
            url = url.get("url")
        if isinstance(url, str):
            return url
        if "file_id" in item:
            raise InvalidRequestError(
                f"{field}: file_id inputs are not supported; send image_url with an https:// "
                "or data: URL, or upload the file with multipart.", param=field,
                code="unsupported_value")
    raise InvalidRequestError(
        f"{field} must hold image URLs as strings or {{\"image_url\": \"…\"}} objects; got "
        f"{type(item).__name__}.", param=field)


def edit_from_form(items: list[tuple[str, str | UploadFile]]) -> EditRequest:
    files: list[ImageSource] = []
    urls: list[ImageSource] = []
    mask: ImageSource | None = None
    rest: list[tuple[str, str]] = []
    for name, value in items:
        if name == "mask":
            if mask is not None:
                raise InvalidRequestError("Send one mask.", param="mask")
            mask = _form_source(name, value)
        elif name in _IMAGE_FILE_FIELDS and isinstance(value, UploadFile):
            files.append(_form_source(name, value))
        elif name in _IMAGE_FILE_FIELDS + _URL_FIELDS and isinstance(value, str):
            urls.append(ImageUrl(value.strip(), name.rstrip("[]")))
        elif isinstance(value, UploadFile):
            raise InvalidRequestError(
                f"Unexpected file field {name!r}; send images as 'image' or 'image[]' and the "
                "mask as 'mask'.", param=name)
        else:
            rest.append((name, value))
    return EditRequest(params=params_from(_fields_from_form(rest)), images=files + urls, mask=mask)


def _form_source(name: str, value: str | UploadFile) -> ImageSource:
    param = name.rstrip("[]")
    if isinstance(value, UploadFile):
        return UploadedImage(value.file, value.filename, param)
    return ImageUrl(value.strip(), param)


def _fields_from_form(items: list[tuple[str, Any]]) -> dict[str, Any]:
    """Text parts → a dict; ``key[]`` repeats make lists, ``key[sub]`` make dicts."""
    fields: dict[str, Any] = {}
    for name, value in items:
        if isinstance(value, UploadFile):
            raise InvalidRequestError(f"Unexpected file field {name!r}.", param=name)
        match = _BRACKETED.match(name)
        if match is None:
            fields[name] = value
        elif match["key"] == "":
            fields.setdefault(match["name"], []).append(value)
        else:
            fields.setdefault(match["name"], {})[match["key"]] = value
    return fields


def params_from(fields: dict[str, Any]) -> ImageParams:
    """Validate scalars; the first problem becomes a 400 naming its field."""
    try:
        return ImageParams.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = str(first["loc"][0]) if first["loc"] else "output_format"
        value = fields.get(param, first.get("input"))
        message = first["msg"].removeprefix("Value error, ")
        raise InvalidRequestError(f"Invalid {param}={value!r}: {message}.", param=param) from exc
