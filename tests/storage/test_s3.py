"""S3 specifics over a moto server: where objects go, URLs that download over HTTP,
clear errors when the bucket, the endpoint or the credentials are wrong."""

from __future__ import annotations

import json

import httpx
import pytest

from retouch.storage import StorageConfigError, StorageUnavailableError, build_storage
from retouch.storage.base import INPUTS, OUTPUTS
from tests.backing import free_port
from tests.storage.moto import raw_client


def _expires_of(url: str) -> int:
    return int(httpx.URL(url).params["X-Amz-Expires"])


def _make_outputs_public(endpoint: str, bucket: str, prefix: str) -> None:
    """What an operator does for RETOUCH_S3_PUBLIC_URL: anyone may read the outputs."""
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/{prefix}{OUTPUTS}/*"}]}
    raw_client(endpoint).put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))


@pytest.mark.anyio
async def test_objects_are_keyed_by_prefix_area_and_name(make_s3_settings, s3_endpoint):
    settings = make_s3_settings(s3_prefix="/team/retouch")
    storage = build_storage(settings)
    output = await storage.put(b"out", "image/png")
    lent = await storage.put(b"in", "image/jpeg", area=INPUTS)
    listed = raw_client(s3_endpoint).list_objects_v2(Bucket=settings.s3_bucket)["Contents"]
    assert sorted(item["Key"] for item in listed) == sorted(
        [f"team/retouch/outputs/{output.name}", f"team/retouch/inputs/{lent.name}"])
    head = raw_client(s3_endpoint).head_object(Bucket=settings.s3_bucket,
                                               Key=f"team/retouch/outputs/{output.name}")
    assert head["ContentType"] == "image/png" and "immutable" in head["CacheControl"]


@pytest.mark.anyio
async def test_presigned_output_urls_download_and_expire_as_configured(make_s3_settings, s3_endpoint):
    storage = build_storage(make_s3_settings(url_ttl=120))
    stored = await storage.put(b"\x89PNG pixels", "image/png")
    url = await storage.url_for(stored.name, base_url="http://ignored.example")
    assert url.startswith(s3_endpoint) and _expires_of(url) == 120
    answer = httpx.get(url)
    assert answer.status_code == 200 and answer.content == b"\x89PNG pixels"
    assert answer.headers["content-type"] == "image/png"
    assert httpx.get(url.split("?")[0]).status_code == 403  # the bucket itself is private


@pytest.mark.anyio
async def test_presigned_urls_last_an_hour_without_a_ttl(make_s3_settings):
    storage = build_storage(make_s3_settings())
    stored = await storage.put(b"x", "image/webp")
    assert _expires_of(await storage.url_for(stored.name, base_url="")) == 3600


@pytest.mark.anyio
async def test_public_base_url_serves_outputs_but_not_lent_inputs(make_s3_settings, s3_endpoint):
    probe = make_s3_settings()
    public = f"{s3_endpoint}/{probe.s3_bucket}"
    storage = build_storage(make_s3_settings(s3_public_url=public + "/", s3_prefix="shared"))
    _make_outputs_public(s3_endpoint, probe.s3_bucket, "shared/")
    stored = await storage.put(b"public pixels", "image/png")
    url = await storage.url_for(stored.name, base_url="http://ignored.example")
    assert url == f"{public}/shared/outputs/{stored.name}"
    assert httpx.get(url).content == b"public pixels"
    lent = await storage.put(b"private input", "image/png", area=INPUTS)
    assert httpx.get(f"{public}/shared/inputs/{lent.name}").status_code == 403
    link = await storage.lend_url(lent.name, base_url="", ttl_s=300)
    assert _expires_of(link) == 300 and httpx.get(link).content == b"private input"


@pytest.mark.anyio
async def test_a_missing_bucket_is_named_with_the_fix(make_s3_settings):
    storage = build_storage(make_s3_settings(s3_bucket="no-such-bucket"))
    with pytest.raises(StorageUnavailableError) as caught:
        await storage.check()
    assert "'no-such-bucket' does not exist" in caught.value.message
    assert "RETOUCH_S3_BUCKET" in caught.value.message and caught.value.status == 503


@pytest.mark.anyio
async def test_an_unreachable_endpoint_is_named_with_the_fix(make_s3_settings):
    dead = f"http://127.0.0.1:{free_port()}"
    storage = build_storage(make_s3_settings(s3_endpoint_url=dead))
    with pytest.raises(StorageUnavailableError) as caught:
        await storage.check()
    assert dead in caught.value.message and "RETOUCH_S3_ENDPOINT_URL" in caught.value.message


@pytest.mark.anyio
async def test_missing_credentials_are_named_with_the_fix(make_s3_settings, monkeypatch, tmp_path):
    settings = make_s3_settings()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(StorageUnavailableError) as caught:
        await build_storage(settings).check()
    assert "AWS_ACCESS_KEY_ID" in caught.value.message


@pytest.mark.anyio
async def test_failures_during_requests_tell_clients_nothing_internal(make_s3_settings):
    dead = f"http://127.0.0.1:{free_port()}"
    storage = build_storage(make_s3_settings(s3_endpoint_url=dead))
    with pytest.raises(StorageUnavailableError) as caught:
        await storage.put(b"x", "image/png")
    assert "try again" in caught.value.message and "127.0.0.1" not in caught.value.message
    assert caught.value.to_envelope()["error"]["code"] == "storage_unavailable"


@pytest.mark.parametrize("overrides, mentioned", [
    ({"s3_bucket": ""}, "RETOUCH_S3_BUCKET"),
    ({"s3_public_url": "https://cdn.example", "url_ttl": 600}, "unset one of them"),
    ({"url_ttl": 8 * 24 * 3600}, "7 days"),
])
def test_settings_that_cannot_work_are_refused_at_build(make_s3_settings, overrides, mentioned):
    with pytest.raises(StorageConfigError, match=mentioned):
        build_storage(make_s3_settings(**overrides))
