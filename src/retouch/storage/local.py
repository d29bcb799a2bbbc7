"""Outputs as files in a local directory, written atomically (temp file + rename).

Outputs are served by ``/files/{name}``: to anyone holding the name, or, with a
``url_ttl``, only through a link signed with the server's secret until it expires.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import anyio

from retouch.storage.base import (
    AREAS,
    INPUTS,
    OUTPUTS,
    Storage,
    StorageUnavailableError,
    StoredFile,
    check_area,
    is_valid_name,
    new_file_name,
)
from retouch.storage.signing import UrlSigner

_PARTIAL = ".tmp-"


class LocalStorage(Storage):
    """Outputs under ``root``, other areas in subdirectories of it (``root/inputs``); a
    crash mid-write leaves only a ``.tmp-*`` file behind.

    ``signer`` signs the links this storage hands out: lent inputs always, outputs when
    ``url_ttl`` > 0 (each output link then works for ``url_ttl`` seconds).
    """

    def __init__(self, root: Path, *, signer: UrlSigner | None = None, url_ttl: float = 0.0) -> None:
        if url_ttl > 0 and signer is None:
            raise ValueError("LocalStorage signs output URLs (url_ttl > 0) only with a signer")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.signer = signer
        self.url_ttl = url_ttl

    async def put(self, data: bytes, content_type: str, *, area: str = OUTPUTS) -> StoredFile:
        name = new_file_name(content_type)
        await anyio.to_thread.run_sync(self._write_atomically, self.directory(area), name, data)
        return StoredFile(name=name, content_type=content_type, size=len(data))

    async def get(self, name: str, *, area: str = OUTPUTS) -> bytes | None:
        path = self.path_of(name, area=area)
        if path is None or not path.is_file():
            return None
        try:
            return await anyio.Path(path).read_bytes()
        except FileNotFoundError:  # deleted (retention, another replica) since the check
            return None

    async def delete(self, name: str, *, area: str = OUTPUTS) -> bool:
        path = self.path_of(name, area=area)
        if path is None or not path.is_file():
            return False
        try:
            path.unlink()
        except FileNotFoundError:  # another process deleted it first
            return False
        return True

    async def list_older_than(self, area: str, cutoff: float) -> list[str]:
        directory = self.directory(area)
        return await anyio.to_thread.run_sync(_names_older_than, directory, cutoff, is_valid_name)

    async def url_for(self, name: str, *, base_url: str) -> str:
        path = self.url_path(name)
        if self.url_ttl > 0:
            path = self.signer.sign(path, self.url_ttl)
        return base_url.rstrip("/") + path

    async def lend_url(self, name: str, *, base_url: str, ttl_s: float) -> str:
        if self.signer is None:
            raise ValueError("LocalStorage lends inputs only with a signer: LocalStorage(root, signer=…)")
        return base_url.rstrip("/") + self.signer.sign(self.url_path(name, area=INPUTS), ttl_s)

    async def check(self) -> None:
        try:
            await anyio.to_thread.run_sync(self._probe)
        except OSError as exc:
            raise StorageUnavailableError(
                f"cannot write to the storage directory {self.root}: {exc.strerror or exc}. Fix: "
                "make it a writable directory for this user, or point RETOUCH_DATA_DIR elsewhere."
            ) from exc

    async def discard_partial(self, cutoff: float) -> int:
        return await anyio.to_thread.run_sync(self._discard_partial, cutoff)

    def directory(self, area: str) -> Path:
        return self.root if check_area(area) == OUTPUTS else self.root / area

    def path_of(self, name: str, *, area: str = OUTPUTS) -> Path | None:
        """The file's path, or None when the name is not one we could have made."""
        return self.directory(area) / name if is_valid_name(name) else None

    def _discard_partial(self, cutoff: float) -> int:
        removed = 0
        for area in AREAS:
            directory = self.directory(area)
            for name in _names_older_than(directory, cutoff, lambda name: name.startswith(_PARTIAL)):
                (directory / name).unlink(missing_ok=True)
                removed += 1
        return removed

    def _probe(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=_PARTIAL)
        os.close(fd)
        os.unlink(tmp)

    @staticmethod
    def _write_atomically(directory: Path, name: str, data: bytes) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=_PARTIAL)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, directory / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _names_older_than(directory: Path, cutoff: float, wanted) -> list[str]:
    """Plain files in ``directory`` whose name ``wanted`` accepts, modified before ``cutoff``."""
    names = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:  # an area nothing was stored in yet
        return []
    for entry in entries:
        try:
            if wanted(entry.name) and entry.is_file() and entry.stat().st_mtime < cutoff:
                names.append(entry.name)
        except FileNotFoundError:  # deleted while we looked
            continue
    return names
