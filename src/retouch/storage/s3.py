"""Outputs and lent inputs as objects in an S3-compatible bucket (AWS, MinIO, R2, …).

Keys are ``{prefix}{area}/{name}``: ``outputs/…`` and ``inputs/…`` under the configured
prefix, so listing one area never walks the other and a bucket lifecycle rule can target
either. ``put_object`` is atomic: a crash never leaves a partial object under a name.

Clients download outputs straight from the bucket: ``{public_url}/{key}`` when the bucket
(or a CDN in front of it) is public, otherwise a presigned URL valid for ``url_ttl``
seconds (an hour when unset; SigV4 allows at most 7 days). Lent inputs are presigned URLs.
boto3 is blocking, so every call runs in a worker thread. Credentials come from boto3's
usual chain: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, a role.
"""

from __future__ import annotations

import functools
import logging
import math
from urllib.parse import quote

import anyio
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from retouch.storage.base import (
    INPUTS,
    OUTPUTS,
    Storage,
    StorageConfigError,
    StorageUnavailableError,
    StoredFile,
    check_area,
    is_valid_name,
    new_file_name,
)

log = logging.getLogger("retouch.storage.s3")

DEFAULT_URL_TTL_S = 3600.0
MAX_PRESIGNED_TTL_S = 7 * 24 * 3600  # the longest a SigV4 presigned URL may live
# Names never change content: caches may keep outputs for good, and no cache should keep
# an input lent for one job.
_CACHE_CONTROL = {OUTPUTS: "public, max-age=31536000, immutable", INPUTS: "private, no-store"}
_MISSING = {"404", "NoSuchKey", "NotFound"}
_PUBLIC_FAILURE = "Image storage is unavailable right now; try again shortly."


class S3Storage(Storage):
    """Files in ``bucket`` under ``prefix`` through a boto3 S3 ``client``."""

    def __init__(self, client, bucket: str, *, prefix: str = "", public_url: str = "",
                 url_ttl: float = 0.0) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.public_url = public_url.rstrip("/")
        self.url_ttl = url_ttl

    async def put(self, data: bytes, content_type: str, *, area: str = OUTPUTS) -> StoredFile:
        name = new_file_name(content_type)
        await self._call("put_object", Bucket=self.bucket, Key=self.key_of(name, area), Body=data,
                         ContentType=content_type, CacheControl=_CACHE_CONTROL[area])
        return StoredFile(name=name, content_type=content_type, size=len(data))

    async def get(self, name: str, *, area: str = OUTPUTS) -> bytes | None:
        if not is_valid_name(name):
            return None
        try:
            response = await self._call("get_object", Bucket=self.bucket, Key=self.key_of(name, area))
        except _Missing:
            return None
        return await anyio.to_thread.run_sync(response["Body"].read)

    async def delete(self, name: str, *, area: str = OUTPUTS) -> bool:
        if not is_valid_name(name):
            return False
        key = self.key_of(name, area)
        try:  # S3 deletes are silent about missing keys; the contract reports them
            await self._call("head_object", Bucket=self.bucket, Key=key)
        except _Missing:
            return False
        await self._call("delete_object", Bucket=self.bucket, Key=key)
        return True

    async def list_older_than(self, area: str, cutoff: float) -> list[str]:
        return await anyio.to_thread.run_sync(self._list_older_than, self.key_of("", area), cutoff)

    async def url_for(self, name: str, *, base_url: str) -> str:
        key = self.key_of(name, OUTPUTS)
        if self.public_url:
            return f"{self.public_url}/{quote(key)}"
        return self._presigned(key, self.url_ttl or DEFAULT_URL_TTL_S)

    async def lend_url(self, name: str, *, base_url: str, ttl_s: float) -> str:
        return self._presigned(self.key_of(name, INPUTS), ttl_s)

    async def check(self) -> None:
        try:
            await anyio.to_thread.run_sync(functools.partial(self.client.head_bucket, Bucket=self.bucket))
        except (BotoCoreError, ClientError) as exc:
            raise StorageUnavailableError(self._diagnose(exc)) from exc

    def key_of(self, name: str, area: str) -> str:
        return f"{self.prefix}{check_area(area)}/{name}"

    def _presigned(self, key: str, ttl_s: float) -> str:
        # Signing is local arithmetic over known credentials: no request, no thread.
        expires = min(max(1, math.ceil(ttl_s)), MAX_PRESIGNED_TTL_S)
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires)

    def _list_older_than(self, area_prefix: str, cutoff: float) -> list[str]:
        names = []
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=area_prefix)
        try:
            for page in pages:
                for item in page.get("Contents", ()):
                    name = item["Key"][len(area_prefix):]
                    if is_valid_name(name) and item["LastModified"].timestamp() < cutoff:
                        names.append(name)
        except (BotoCoreError, ClientError) as exc:
            raise self._unavailable("list_objects_v2", exc) from exc
        return names

    async def _call(self, operation: str, **params):
        """One S3 request in a worker thread; a missing key raises ``_Missing``, any other
        failure a ``StorageUnavailableError`` safe to show a client (the cause is logged)."""
        try:
            return await anyio.to_thread.run_sync(functools.partial(getattr(self.client, operation), **params))
        except ClientError as exc:
            if _error_code(exc) in _MISSING:
                raise _Missing from exc
            raise self._unavailable(operation, exc) from exc
        except BotoCoreError as exc:
            raise self._unavailable(operation, exc) from exc

    def _unavailable(self, operation: str, exc: Exception) -> StorageUnavailableError:
        log.warning("S3 %s on bucket %s failed: %s", operation, self.bucket, exc)
        return StorageUnavailableError(_PUBLIC_FAILURE)

    def _diagnose(self, exc: Exception) -> str:
        """What ``check`` says: the cause, in the operator's terms, and the fix."""
        where = self.client.meta.endpoint_url
        code = _error_code(exc) if isinstance(exc, ClientError) else ""
        if code in _MISSING or code == "NoSuchBucket":
            return (f"S3 bucket {self.bucket!r} does not exist at {where}. Fix: create it, or set "
                    "RETOUCH_S3_BUCKET to an existing bucket (and RETOUCH_S3_ENDPOINT_URL to its service).")
        if code in {"403", "AccessDenied", "Forbidden"}:
            return (f"access to S3 bucket {self.bucket!r} at {where} was denied. Fix: give these "
                    "credentials s3:ListBucket, s3:GetObject, s3:PutObject and s3:DeleteObject on it.")
        if isinstance(exc, NoCredentialsError):
            return ("no S3 credentials were found. Fix: set AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or run with an instance role).")
        return (f"cannot use S3 bucket {self.bucket!r} at {where}: {exc}. Fix: check "
                "RETOUCH_S3_ENDPOINT_URL and RETOUCH_S3_REGION, and that the service is reachable.")


class _Missing(Exception):
    """The key does not exist (S3 answered 404)."""


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def s3_client(*, region: str = "", endpoint_url: str = ""):
    """A boto3 S3 client: short connect timeout, a few retries, path-style addressing for
    custom endpoints (MinIO, moto and most S3-compatible services expect it)."""
    import boto3

    config = Config(
        signature_version="s3v4",
        connect_timeout=5,
        read_timeout=60,
        retries={"max_attempts": 3, "mode": "standard"},
        max_pool_connections=64,
        s3={"addressing_style": "path" if endpoint_url else "auto"},
    )
    return boto3.session.Session().client("s3", region_name=region or None,
                                          endpoint_url=endpoint_url or None, config=config)


def check_settings(*, bucket: str, public_url: str, url_ttl: float) -> None:
    """Refuse S3 settings that cannot work together, before anything is stored."""
    if not bucket:
        raise StorageConfigError("RETOUCH_STORAGE=s3 needs a bucket: set RETOUCH_S3_BUCKET.")
    if public_url and url_ttl > 0:
        raise StorageConfigError(
            f"RETOUCH_S3_PUBLIC_URL={public_url} serves outputs publicly for good, but "
            f"RETOUCH_URL_TTL={url_ttl:g} asks for links that expire. Fix: unset one of them "
            "(without a public URL, outputs get presigned URLs valid for RETOUCH_URL_TTL).")
    if url_ttl > MAX_PRESIGNED_TTL_S:
        raise StorageConfigError(
            f"RETOUCH_URL_TTL={url_ttl:g} is longer than S3 presigned URLs can live "
            f"({MAX_PRESIGNED_TTL_S} s, 7 days). Fix: lower it, or serve outputs from "
            "RETOUCH_S3_PUBLIC_URL.")
