"""Where output images live: a small interface and its backends."""

from retouch.storage.base import Storage, StoredFile, new_file_name
from retouch.storage.local import LocalStorage

__all__ = ["LocalStorage", "Storage", "StoredFile", "new_file_name"]
