"""Shared fixtures: settings on a temp dir, a real retouch server, test images."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import httpx
import pytest

from retouch.config import Settings
from tests import backing
from tests.servers import running_retouch
from tests.storage.moto import (
    CREDENTIALS,
    REGION,
    create_bucket,
    moto_installed,
    moto_server,
)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip locally when a tool is missing; in CI a missing tool is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI must run every test: {reason}")
    pytest.skip(reason)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def make_settings(tmp_path) -> Callable[..., Settings]:
    def make(**overrides) -> Settings:
        overrides.setdefault("data_dir", tmp_path / "var")
        return Settings(_env_file=None, **overrides)

    return make


@pytest.fixture
def settings(make_settings) -> Settings:
    return make_settings()


@pytest.fixture
def server(settings) -> Iterator[str]:
    """Base URL of a real retouch server with default settings (no keys)."""
    with running_retouch(settings) as url:
        yield url


@pytest.fixture
def client(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=30) as http:
        yield http


@pytest.fixture(scope="session")
def postgres_base_url() -> Iterator[str]:
    """One PostgreSQL server for the run (``postgresql://retouch@127.0.0.1:<port>``)."""
    require(bool(backing.postgres_bin("initdb") and backing.postgres_bin("postgres")),
            "PostgreSQL is not installed (apt-get install postgresql)")
    with backing.postgres_server() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_base_url) -> str:
    """A fresh, empty database on that server, for one test."""
    return backing.create_database(postgres_base_url)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """One Redis server for the run."""
    import shutil

    require(shutil.which("redis-server") is not None, "redis-server is not installed (apt-get install redis-server)")
    with backing.redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The endpoint URL of one moto S3 server for the run."""
    require(moto_installed(), "moto's server is not installed (pip install 'moto[server]')")
    with moto_server() as url:
        yield url


@pytest.fixture
def make_s3_settings(make_settings, s3_endpoint, monkeypatch) -> Callable[..., Settings]:
    """Settings for S3 storage on a new, empty bucket (credentials in the environment)."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    bucket = create_bucket(s3_endpoint)

    def make(**overrides) -> Settings:
        fields = {"storage": "s3", "s3_bucket": bucket, "s3_endpoint_url": s3_endpoint,
                  "s3_region": REGION, **overrides}
        return make_settings(**fields)

    return make
