"""Outputs as files in a local directory, written atomically (temp file + rename)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import anyio

from retouch.storage.base import OUTPUTS, Storage, StoredFile, check_area, is_valid_name, new_file_name


class LocalStorage(Storage):
    """Outputs under ``root``, other areas in subdirectories of it (``root/inputs``); a
    crash mid-write leaves only a ``.tmp-*`` file behind."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    async def put(self, data: bytes, content_type: str, *, area: str = OUTPUTS) -> StoredFile:
        name = new_file_name(content_type)
        await anyio.to_thread.run_sync(self._write_atomically, self.directory(area), name, data)
        return StoredFile(name=name, content_type=content_type, size=len(data))

    async def get(self, name: str, *, area: str = OUTPUTS) -> bytes | None:
        path = self.path_of(name, area=area)
        if path is None or not path.is_file():
            return None
        return await anyio.Path(path).read_bytes()

    async def delete(self, name: str, *, area: str = OUTPUTS) -> bool:
        path = self.path_of(name, area=area)
        if path is None or not path.is_file():
            return False
        path.unlink()
        return True

    def directory(self, area: str) -> Path:
        return self.root if check_area(area) == OUTPUTS else self.root / area

    def path_of(self, name: str, *, area: str = OUTPUTS) -> Path | None:
        """The file's path, or None when the name is not one we could have made."""
        return self.directory(area) / name if is_valid_name(name) else None

    @staticmethod
    def _write_atomically(directory: Path, name: str, data: bytes) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, directory / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
