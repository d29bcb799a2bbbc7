"""Settings → the configured storage backend."""

from __future__ import annotations

from retouch.config import Settings
from retouch.storage.base import Storage, StorageConfigError
from retouch.storage.local import LocalStorage
from retouch.storage.signing import UrlSigner, load_secret


def build_storage(settings: Settings, signer: UrlSigner | None = None) -> Storage:
    """The backend ``RETOUCH_STORAGE`` names. ``signer`` (the server's, so that ``/files``
    verifies what storage signs) defaults to one over ``RETOUCH_SIGNING_KEY`` or the data
    directory's key. Raises ``StorageConfigError`` for settings that cannot work."""
    if settings.storage == "s3":
        return _s3_storage(settings)
    signer = signer or UrlSigner(load_secret(settings.signing_key, settings.data_dir))
    return LocalStorage(settings.files_dir, signer=signer, url_ttl=settings.url_ttl)


def _s3_storage(settings: Settings) -> Storage:
    try:
        from retouch.storage.s3 import S3Storage, check_settings, s3_client
    except ImportError as exc:  # boto3 is an optional extra
        raise StorageConfigError(
            f"RETOUCH_STORAGE=s3 needs boto3, which is not installed ({exc.name}). Fix: "
            "pip install 'retouch[s3]'.") from exc
    check_settings(bucket=settings.s3_bucket, public_url=settings.s3_public_url, url_ttl=settings.url_ttl)
    client = s3_client(region=settings.s3_region, endpoint_url=settings.s3_endpoint_url)
    return S3Storage(client, settings.s3_bucket, prefix=settings.s3_prefix,
                     public_url=settings.s3_public_url, url_ttl=settings.url_ttl)
