"""API keys: static ones from ``RETOUCH_API_KEYS`` and managed ones in the database,
held only as SHA-256 digests."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from dataclasses import dataclass

from retouch.db.keys import KeyRecord, KeyStore
from retouch.errors import AuthenticationError, PermissionDeniedError

# How long "no managed key exists yet" is believed before asking the database again.
OPEN_CHECK_INTERVAL_S = 2.0


class ModelNotAllowedError(PermissionDeniedError):
    code = "model_not_allowed"


@dataclass(frozen=True)
class Principal:
    """The caller: ``key_id`` is a short, non-secret label (never the key); ``record`` is
    the managed key with its limits, None for static keys and open servers."""

    key_id: str
    record: KeyRecord | None = None

    def check_model(self, model_id: str, aliases: list[str]) -> None:
        """403 unless this key may use the model (by id or alias)."""
        allowed = self.record.allowed_models if self.record is not None else None
        if allowed is None or model_id in allowed or any(a in allowed for a in aliases):
            return
        raise ModelNotAllowedError(
            f"This API key may not use {model_id}; it may use: {', '.join(allowed)}.", param="model")


ANONYMOUS = Principal(key_id="anonymous")


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def key_label(key: str) -> str:
    """A label safe for logs: the first characters of the key's digest."""
    return "key-" + _digest(key).hex()[:8]


def extract_key(authorization: str | None) -> str | None:
    """``Bearer <key>`` or the bare ``<key>`` (Siraya's examples use both)."""
    if not authorization:
        return None
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme.lower() == "bearer":
        return rest.strip() or None
    return authorization.strip()


class StaticKeyAuthenticator:
    """Accepts any configured key; with none configured, everyone is let in."""

    def __init__(self, keys: list[str]) -> None:
        self._digests = [(_digest(key), key_label(key)) for key in keys]

    @property
    def open(self) -> bool:
        return not self._digests

    def match(self, key: str) -> Principal | None:
        digest = _digest(key)
        matched = None
        # Compare against every key (no early exit), digests of equal length: no timing leak.
        for known, label in self._digests:
            if hmac.compare_digest(digest, known):
                matched = label
        return Principal(key_id=matched) if matched else None

    async def authenticate(self, authorization: str | None) -> Principal:
        if self.open:
            return ANONYMOUS
        key = extract_key(authorization)
        if key is None:
            raise _missing_key()
        principal = self.match(key)
        if principal is None:
            raise _wrong_key()
        return principal


class KeyAuthenticator:
    """Static keys, then managed keys (read from the database on every request, so a
    revocation holds at once on every replica). With no key of either kind, the server
    is open (and ``retouch serve`` keeps it on loopback)."""

    def __init__(self, static: StaticKeyAuthenticator, store: KeyStore) -> None:
        self.static = static
        self.store = store
        self._open_until = 0.0
        self._closed = False
        self._asking = asyncio.Lock()

    async def authenticate(self, authorization: str | None) -> Principal:
        key = extract_key(authorization)
        if key is None:
            if await self._open():
                return ANONYMOUS
            raise _missing_key()
        principal = self.static.match(key) if not self.static.open else None
        if principal is not None:
            return principal
        record = await self.store.find(key)
        if record is None:
            if await self._open():
                return ANONYMOUS  # an open server ignores whatever key a client sends
            raise _wrong_key()
        self._closed = True  # a managed key exists: no longer open, whatever was cached
        if record.revoked_at is not None:
            raise AuthenticationError(f"This API key ({record.prefix}…) was revoked on "
                                      f"{record.revoked_at:%Y-%m-%d %H:%M} UTC; ask for a new one.")
        await self.store.touch(record)
        return Principal(key_id=record.prefix, record=record)

    async def _open(self) -> bool:
        if not self.static.open or self._closed:
            return False
        if time.monotonic() < self._open_until:
            return True
        async with self._asking:  # a burst of requests asks the database once, not each
            if time.monotonic() >= self._open_until and not self._closed:
                if await self.store.any_created():
                    self._closed = True  # keys are never deleted, only revoked: closed for good
                else:
                    self._open_until = time.monotonic() + OPEN_CHECK_INTERVAL_S
        return not self._closed


def _missing_key() -> AuthenticationError:
    return AuthenticationError(
        "No API key was sent. Send 'Authorization: Bearer <key>' with a key from "
        "RETOUCH_API_KEYS or `retouch keys create`.")


def _wrong_key() -> AuthenticationError:
    return AuthenticationError("Incorrect API key provided. Check the key and try again.")
