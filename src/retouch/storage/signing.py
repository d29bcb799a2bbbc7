"""Signed, expiring links to stored files (HMAC-SHA256 over the path and the expiry).

A link is ``{path}?expires={unix seconds}&signature={urlsafe base64}``; it works until
``expires`` for anyone holding it and for nobody after, and cannot be made for another
path without the secret. Replicas that serve each other's links share the secret
(``RETOUCH_SIGNING_KEY``); a single server makes one in its data directory.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

_SECRET_BYTES = 32


class UrlSigner:
    """Signs and verifies ``(path, expires)`` pairs with one secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the signing secret must be at least 16 bytes")
        self._secret = secret

    def signature(self, path: str, expires: int) -> str:
        digest = hmac.new(self._secret, f"{path}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def sign(self, path: str, ttl_s: float, *, now: float | None = None) -> str:
        """``path`` with the query that makes it valid for ``ttl_s`` seconds."""
        expires = int((time.time() if now is None else now) + ttl_s)
        return f"{path}?expires={expires}&signature={self.signature(path, expires)}"

    def verify(self, path: str, expires: str | None, signature: str | None, *,
               now: float | None = None) -> bool:
        """True when the pair was signed by us for ``path`` and has not expired."""
        if not expires or not signature or not expires.isdigit():
            return False
        if int(expires) < (time.time() if now is None else now):
            return False
        return hmac.compare_digest(self.signature(path, int(expires)), signature)


def load_secret(configured: str, data_dir: Path) -> bytes:
    """The configured secret, or one kept in ``data_dir/signing.key`` (made on first use,
    readable by this user only)."""
    if configured:
        return configured.encode("utf-8")
    path = Path(data_dir) / "signing.key"
    if not path.exists():
        _create_once(path, secrets.token_urlsafe(_SECRET_BYTES))
    return path.read_text(encoding="utf-8").strip().encode("utf-8")


def _create_once(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` unless it exists, atomically: a process starting beside
    us either wins or reads the winner's complete file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.link(tmp, path)  # fails if another process got there first: keep theirs
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
