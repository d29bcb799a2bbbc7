"""Settings: every knob is an environment variable with the ``RETOUCH_`` prefix.

Settings reach code through the app factory (``create_app(settings)``), never a global.
Every limit has a safe default.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MB = 1024 * 1024


class Settings(BaseSettings):
    """What a deployment can configure. Lists are comma-separated strings."""

    # Errors never echo a value: a mistyped database URL may carry its password.
    model_config = SettingsConfigDict(env_prefix="RETOUCH_", extra="ignore", hide_input_in_errors=True)

    data_dir: Path = Path("var")
    public_url: str = ""
    # Input images lent to providers as signed links below public_url: "auto" when
    # public_url is reachable from the internet (not localhost or a private address).
    input_links: Literal["auto", "always", "never"] = "auto"
    input_link_ttl: float = Field(default=900.0, gt=0)
    signing_key: str = Field(default="", repr=False)  # shared by replicas; default: data_dir/signing.key
    api_keys: str = Field(default="", repr=False)
    models_file: Path | None = None
    default_model: str = "retouch/basic"

    # Production backbone (all optional: the defaults need nothing running).
    database_url: str = Field(default="", repr=False)  # default: SQLite at data_dir/retouch.db
    redis_url: str = Field(default="", repr=False)  # shared rate limits; default: in-process
    admin_key: str = Field(default="", repr=False)  # enables the /admin API
    storage: Literal["local", "s3"] = "local"
    s3_bucket: str = ""
    s3_prefix: str = ""
    s3_region: str = ""
    s3_endpoint_url: str = ""  # MinIO, R2, moto, …
    s3_public_url: str = ""  # public base of the bucket; default: presigned URLs
    url_ttl: float = Field(default=0.0, ge=0)  # >0: output URLs signed and valid this many seconds
    retention: str = "7d"  # outputs older than this are deleted ("0" keeps them forever)
    usage_log: bool = True  # one row per request; monthly budgets need it
    log_format: Literal["text", "json"] = "text"
    shutdown_timeout: float = Field(default=30.0, ge=0)

    allow_private_urls: bool = False
    allowed_hosts: str = ""
    max_fetch_bytes: int = 20 * MB
    fetch_connect_timeout: float = 10.0
    fetch_timeout: float = 60.0

    max_upload_bytes: int = 50 * MB
    max_request_bytes: int = 200 * MB
    max_pixels: int = 50_000_000
    max_images: int = 16
    max_output_side: int = 8192
    max_prompt_chars: int = 32_000
    engine_threads: int = 0
    # Local models: what the loaded pipelines may take together, in GB (0: no limit).
    local_memory_gb: float = Field(default=0.0, ge=0)
    # Local models with `backend: ray`: the Ray cluster ("auto": the one this machine is a
    # node of; else the head's host:6379) and the Serve application `retouch ray deploy` made.
    ray_address: str = "auto"
    ray_app: str = "retouch"

    @field_validator("retention")
    @classmethod
    def _valid_retention(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        scheme = value.split("://", 1)[0].lower() if value else ""
        if value and scheme not in _DATABASE_SCHEMES:
            raise ValueError(f"{scheme or value!r} is not a database retouch can use: write "
                             "postgresql://user:password@host:5432/name (or sqlite+aiosqlite:///path)")
        return value

    @field_validator("redis_url")
    @classmethod
    def _known_redis(cls, value: str) -> str:
        if value and not value.lower().startswith(("redis://", "rediss://")):
            raise ValueError("write it as redis://host:6379/0 (or rediss:// for TLS)")
        return value

    @property
    def api_key_list(self) -> list[str]:
        return _split(self.api_keys)

    @property
    def allowed_host_set(self) -> frozenset[str]:
        return frozenset(h.lower() for h in _split(self.allowed_hosts))

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    @property
    def database(self) -> str:
        """The SQLAlchemy async URL: ``RETOUCH_DATABASE_URL`` or SQLite in the data dir.
        ``postgresql://`` URLs are given the asyncpg driver."""
        url = self.database_url or f"sqlite+aiosqlite:///{(self.data_dir / 'retouch.db').resolve()}"
        for plain, driver in (("postgresql://", "postgresql+asyncpg://"), ("postgres://", "postgresql+asyncpg://"),
                              ("sqlite://", "sqlite+aiosqlite://")):
            if url.startswith(plain):
                return driver + url[len(plain):]
        return url

    @property
    def retention_seconds(self) -> float:
        """``retention`` as seconds: a number, or a number with s, m, h or d; 0 = forever."""
        return parse_duration(self.retention)

    @property
    def lends_input_links(self) -> bool:
        """Whether input images may go to providers as signed links to our storage."""
        if self.input_links == "never" or not self.public_url:
            return False
        return self.input_links == "always" or is_internet_url(self.public_url)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DATABASE_SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg", "sqlite", "sqlite+aiosqlite")


def parse_duration(text: str) -> float:
    """``"90"``, ``"15m"``, ``"24h"``, ``"7d"`` → seconds; ValueError otherwise."""
    value = text.strip().lower()
    unit = _UNITS.get(value[-1:], None)
    number = value[:-1] if unit else value
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        raise ValueError(f"{text!r} is not a duration; write e.g. 3600, 90m, 24h or 7d") from None
    if seconds < 0:
        raise ValueError(f"{text!r} is negative")
    return seconds


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def is_loopback_host(host: str) -> bool:
    """True for names and addresses that only this machine can reach."""
    if host.lower() in {"localhost", "localhost."}:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_internet_url(url: str) -> bool:
    """Whether a provider on the internet could plausibly reach ``url``: not localhost, not
    a private, loopback or link-local address, not a single-label or .local/.internal name."""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    try:
        return ipaddress.ip_address(host).is_global
    except ValueError:
        pass
    private_suffixes = (".localhost", ".local", ".internal", ".lan", ".home.arpa")
    return "." in host and host != "localhost" and not host.endswith(private_suffixes)


def check_serve_safety(settings: Settings, host: str, insecure_no_auth: bool) -> str | None:
    """Why serving on ``host`` would be unsafe, or None. Open servers stay on loopback."""
    if settings.api_key_list or insecure_no_auth or is_loopback_host(host):
        return None
    return (
        f"refusing to listen on {host} without API keys: anyone who can reach this "
        "address could use it. Create one with `retouch keys create --name NAME`, or set "
        "RETOUCH_API_KEYS=key1,key2 (clients send "
        "'Authorization: Bearer <key>'), or pass --insecure-no-auth if a proxy in "
        "front already authenticates."
    )
