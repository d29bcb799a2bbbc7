"""The storage contract every backend (local directory, S3, …) implements."""

from __future__ import annotations

import re
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass

# 24 random bytes = 192 bits: names nobody can guess or enumerate.
_NAME_BYTES = 24
_NAME = re.compile(r"^[A-Za-z0-9_-]{32}\.(png|jpeg|webp)$")

EXTENSIONS = {"image/png": "png", "image/jpeg": "jpeg", "image/webp": "webp"}


def new_file_name(content_type: str) -> str:
    """An unguessable name with the extension of ``content_type``."""
    return f"{secrets.token_urlsafe(_NAME_BYTES)}.{EXTENSIONS[content_type]}"


def is_valid_name(name: str) -> bool:
    """True when ``name`` could have come from ``new_file_name`` (no paths, no tricks)."""
    return bool(_NAME.match(name))


@dataclass(frozen=True)
class StoredFile:
    name: str
    content_type: str
    size: int


class Storage(ABC):
    """Put, read and delete output files by name.

    Implementations must make a file visible under its final name only once it is
    complete (no partial files after a crash) and must reject names that
    ``is_valid_name`` refuses.
    """

    @abstractmethod
    async def put(self, data: bytes, content_type: str) -> StoredFile:
        """Store ``data`` under a new unguessable name and return it."""

    @abstractmethod
    async def get(self, name: str) -> bytes | None:
        """The file's bytes, or None when there is no such file."""

    @abstractmethod
    async def delete(self, name: str) -> bool:
        """Remove the file; True when it existed."""

    def url_path(self, name: str) -> str:
        """The path, below the public base URL, that serves ``name``."""
        return f"/files/{name}"
