"""Outputs as files in a local directory, written atomically (temp file + rename)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import anyio

from retouch.storage.base import Storage, StoredFile, is_valid_name, new_file_name


class LocalStorage(Storage):
    """Files under ``root``; a crash mid-write leaves only a ``.tmp-*`` file behind."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    async def put(self, data: bytes, content_type: str) -> StoredFile:
        name = new_file_name(content_type)
        await anyio.to_thread.run_sync(self._write_atomically, name, data)
        return StoredFile(name=name, content_type=content_type, size=len(data))

    async def get(self, name: str) -> bytes | None:
        path = self.path_of(name)
        if path is None or not path.is_file():
            return None
        return await anyio.Path(path).read_bytes()

    async def delete(self, name: str) -> bool:
        path = self.path_of(name)
        if path is None or not path.is_file():
            return False
        path.unlink()
        return True

    def path_of(self, name: str) -> Path | None:
        """The file's path, or None when the name is not one we could have made."""
        return self.root / name if is_valid_name(name) else None

    def _write_atomically(self, name: str, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, self.root / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
