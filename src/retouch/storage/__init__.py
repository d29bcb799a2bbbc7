"""Where output images live: a small interface and its backends (S3 in ``storage.s3``,
imported only when configured: boto3 is an optional extra)."""

from retouch.storage.base import (
    Storage,
    StorageConfigError,
    StorageUnavailableError,
    StoredFile,
    new_file_name,
)
from retouch.storage.factory import build_storage
from retouch.storage.local import LocalStorage

__all__ = [
    "LocalStorage",
    "Storage",
    "StorageConfigError",
    "StorageUnavailableError",
    "StoredFile",
    "build_storage",
    "new_file_name",
]
