"""Static API keys from ``RETOUCH_API_KEYS``, held only as SHA-256 digests."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from retouch.errors import AuthenticationError


@dataclass(frozen=True)
class Principal:
    """The caller: ``key_id`` is a short, non-secret label (never the key)."""

    key_id: str


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

    def authenticate(self, authorization: str | None) -> Principal:
        if self.open:
            return ANONYMOUS
        key = extract_key(authorization)
        if key is None:
            raise AuthenticationError(
                "No API key was sent. Send 'Authorization: Bearer <key>' with a key from "
                "RETOUCH_API_KEYS."
            )
        digest = _digest(key)
        matched = None
        # Compare against every key (no early exit), digests of equal length: no timing leak.
        for known, label in self._digests:
            if hmac.compare_digest(digest, known):
                matched = label
        if matched is None:
            raise AuthenticationError("Incorrect API key provided. Check the key and try again.")
        return Principal(key_id=matched)
