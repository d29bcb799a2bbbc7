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


@dataclass(frozen=True)
class StoredFile:
    name: str
    content_type: str
    size: int


class Storage(ABC):
    """Put, read and delete files by name, in one of ``AREAS`` (outputs by default).

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

    def url_path(self, name: str, *, area: str = OUTPUTS) -> str:
        """The path, below the public base URL, that serves ``name``."""
        return f"/files/{name}" if area == OUTPUTS else f"/files/{area}/{name}"


def check_area(area: str) -> str:
    if area not in AREAS:
        raise ValueError(f"unknown storage area {area!r}; one of {', '.join(AREAS)}")
    return area
