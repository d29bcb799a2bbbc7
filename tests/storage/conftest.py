"""S3 fixtures for the storage tests: one moto server for the run, a fresh bucket per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from retouch.config import Settings
from tests.conftest import require
from tests.storage.moto import CREDENTIALS, REGION, create_bucket, moto_installed, moto_server


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
