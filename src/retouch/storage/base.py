"""The storage contract every backend (local directory, S3, …) implements."""

from __future__ import annotations

import re
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass

from retouch.errors import RetouchError

# 24 random bytes = 192 bits: names nobody can guess or enumerate.
_NAME_BYTES = 24
_NAME = re.compile(r"^[A-Za-z0-9_-]{32}\.(png|jpeg|webp)$")

EXTENSIONS = {"image/png": "png", "image/jpeg": "jpeg", "image/webp": "webp"}

# Areas keep apart what is served differently: outputs by name to anyone who has it,
# inputs (lent to providers for one job) only through a signed, expiring link.
OUTPUTS = "outputs"
INPUTS = "inputs"
AREAS = (OUTPUTS, INPUTS)


def new_file_name(content_type: str) -> str:
    """An unguessable name with the extension of ``content_type``."""
    return f"{secrets.token_urlsafe(_NAME_BYTES)}.{EXTENSIONS[content_type]}"


def is_valid_name(name: str) -> bool:
    """True when ``name`` could have come from ``new_file_name`` (no paths, no tricks)."""
    return bool(_NAME.match(name))


class StorageUnavailableError(RetouchError):
    """Storage cannot be reached or used right now (503). ``check()`` raises it with the
    cause and the fix; per-request failures carry a message safe to show a client."""

    status = 503
    type = "service_unavailable"
    code = "storage_unavailable"


class StorageConfigError(ValueError):
    """Storage settings that cannot work; raised when storage is built, never per request."""


@dataclass(frozen=True)
class StoredFile:
    name: str
    content_type: str
    size: int


class Storage(ABC):
    """Put, read, list and delete files by name, in one of ``AREAS`` (outputs by default),
    and say where clients and providers download them.

    Implementations must make a file visible under its final name only once it is
    complete (no partial files after a crash), must reject names that ``is_valid_name``
    refuses, and must keep the areas apart (a name in one is not found in the other).
    """

    @abstractmethod
    async def put(self, data: bytes, content_type: str, *, area: str = OUTPUTS) -> StoredFile:
        """Store ``data`` under a new unguessable name and return it."""

    @abstractmethod
    async def get(self, name: str, *, area: str = OUTPUTS) -> bytes | None:
        """The file's bytes, or None when there is no such file."""

    @abstractmethod
    async def delete(self, name: str, *, area: str = OUTPUTS) -> bool:
        """Remove the file; True when it existed."""

    @abstractmethod
    async def list_older_than(self, area: str, cutoff: float) -> list[str]:
        """Names in ``area`` stored before ``cutoff`` (Unix seconds): what retention deletes."""

    @abstractmethod
    async def url_for(self, name: str, *, base_url: str) -> str:
        """The URL a client downloads output ``name`` from. ``base_url`` is retouch's own
        public base, for backends that serve through ``/files``."""

    @abstractmethod
    async def lend_url(self, name: str, *, base_url: str, ttl_s: float) -> str:
        """A URL that serves input ``name`` to whoever holds it for ``ttl_s`` seconds."""

    @abstractmethod
    async def check(self) -> None:
        """Return when storage is usable; otherwise raise ``StorageUnavailableError``
        saying what is wrong and how to fix it (for ``retouch doctor`` and ``/readyz``)."""

    async def discard_partial(self, cutoff: float) -> int:
        """Remove what a crash left half-written (never under a final name) before
        ``cutoff``; returns how many. Backends whose writes are atomic have none."""
        return 0

    def url_path(self, name: str, *, area: str = OUTPUTS) -> str:
        """The path, below retouch's public base URL, that serves ``name``."""
        return f"/files/{name}" if area == OUTPUTS else f"/files/{area}/{name}"


def check_area(area: str) -> str:
    if area not in AREAS:
        raise ValueError(f"unknown storage area {area!r}; one of {', '.join(AREAS)}")
    return area
