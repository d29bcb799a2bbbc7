"""The admin API: manage keys and read usage over HTTP, behind ``RETOUCH_ADMIN_KEY``.

    POST   /admin/keys              create (the secret is in this answer only)
    GET    /admin/keys              list (``?include_revoked=false`` for live keys only)
    GET    /admin/keys/{key}        one key, by id or prefix
    PATCH  /admin/keys/{key}        change name, models or limits (null lifts a limit)
    DELETE /admin/keys/{key}        revoke, at once on every replica
    GET    /admin/usage             requests, images, spend and errors per key
                                    (``?since=30d``, ``&key=<id or prefix>``)

The same operations as ``retouch keys``; errors in the OpenAI envelope like everywhere.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from retouch.auth.keys import extract_key
from retouch.config import parse_duration
from retouch.db.keys import KeyRecord, KeyStore
from retouch.errors import (
    AuthenticationError,
    InvalidRequestError,
    PermissionDeniedError,
    RetouchError,
    ServiceUnavailableError,
)
from retouch.providers.registry import ModelRegistry


class KeyNotFoundError(RetouchError):
    status = 404
    type = "invalid_request_error"
    code = "key_not_found"


async def require_admin(request: Request) -> None:
    """401 unless the request carries the admin key; 403 while the admin API is off."""
    admin_key = request.app.state.service.settings.admin_key
    if not admin_key:
        raise PermissionDeniedError("The admin API is off on this server. Set RETOUCH_ADMIN_KEY "
                                    "to enable it, or use `retouch keys` on the server.")
    sent = extract_key(request.headers.get("authorization")) or ""
    if not hmac.compare_digest(_digest(sent), _digest(admin_key)):
        raise AuthenticationError("The admin API needs 'Authorization: Bearer <RETOUCH_ADMIN_KEY>'; "
                                  "API keys for images are not admin keys.")


router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])


class KeyLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[str] | None = Field(default=None, description="model ids it may use; null: all")
    rpm: int | None = Field(default=None, ge=0, description="requests per minute")
    images_per_day: int | None = Field(default=None, ge=0)
    monthly_budget_usd: float | None = Field(default=None, ge=0, description="US dollars per calendar month")


class NewKey(KeyLimits):
    name: str = Field(min_length=1, max_length=200)


class KeyChanges(KeyLimits):
    name: str | None = Field(default=None, min_length=1, max_length=200)


@router.post("/keys", status_code=201)
async def create_key(body: NewKey, request: Request) -> JSONResponse:
    models = _registry(request).canonical_ids(body.models)
    record, secret = await _keys(request).create(
        body.name, models=models, rpm=body.rpm, images_per_day=body.images_per_day,
        monthly_budget_usd=body.monthly_budget_usd)
    return JSONResponse({"key": secret, **record.as_dict()}, status_code=201)


@router.get("/keys")
async def list_keys(request: Request, include_revoked: bool = True) -> dict:
    records = await _keys(request).list(include_revoked=include_revoked)
    return {"object": "list", "data": [r.as_dict() for r in records]}


@router.get("/keys/{ref}")
async def get_key(ref: str, request: Request) -> dict:
    return _found(await _keys(request).get(ref), ref).as_dict()


@router.patch("/keys/{ref}")
async def update_key(ref: str, body: KeyChanges, request: Request) -> dict:
    changes = body.model_dump(exclude_unset=True)
    if "models" in changes:
        changes["allowed_models"] = _registry(request).canonical_ids(changes.pop("models"))
    if changes.get("name", "") is None:
        raise InvalidRequestError("name cannot be null; leave it out to keep the name.", param="name")
    return _found(await _keys(request).update(ref, **changes), ref).as_dict()


@router.delete("/keys/{ref}")
async def revoke_key(ref: str, request: Request) -> dict:
    return _found(await _keys(request).revoke(ref), ref).as_dict()


@router.get("/usage")
async def usage(request: Request, since: str = "30d", key: str | None = None) -> dict:
    try:
        start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=parse_duration(since))
    except ValueError as exc:
        raise InvalidRequestError(f"since: {exc}.", param="since") from None
    key_id = _found(await _keys(request).get(key), key).id if key is not None else None
    log = request.app.state.usage
    if log is None:
        raise ServiceUnavailableError("The usage log is off on this server (RETOUCH_USAGE_LOG=false): "
                                      "there is no usage to report.", code="usage_log_off")
    rows = await log.by_key(start, key_id)
    return {"object": "list", "since": start.isoformat(), "data": [row.__dict__ for row in rows]}


def _found(record: KeyRecord | None, ref: str) -> KeyRecord:
    if record is None:
        raise KeyNotFoundError(f"No single key has the id or prefix {ref!r}; GET /admin/keys "
                               "lists them.", param="key")
    return record


def _keys(request: Request) -> KeyStore:
    return request.app.state.keys


def _registry(request: Request) -> ModelRegistry:
    return request.app.state.service.registry


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8")).digest()
