"""Two ``retouch serve`` processes sharing one PostgreSQL, one Redis and one S3 bucket, as
replicas behind a load balancer would: nothing one needs may live only in the other."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest
import yaml

from tests.images import decode, gradient, png
from tests.providers.fake_openai import (
    GRAY_PNG,
    FakeOpenAI,
    held_reply,
    running_fake,
)
from tests.servers import retouch_serve
from tests.storage.moto import CREDENTIALS, REGION, create_bucket

ADMIN_KEY = "replicas-admin-key-0123456789"
UPSTREAM_KEY = "sk-replicas-upstream-0123456789"


@dataclass
class Replicas:
    first: str
    second: str
    upstream: FakeOpenAI
    release: threading.Event  # while clear, the upstream holds every edit


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, postgres_base_url, redis_url, s3_endpoint) -> Iterator[Replicas]:
    from tests.backing import create_database

    root = tmp_path_factory.mktemp("replicas")
    release = threading.Event()
    release.set()
    models = root / "models.yaml"
    with running_fake(FakeOpenAI(key=UPSTREAM_KEY)) as fake:
        fake.reply = held_reply(release)
        models.write_text(yaml.safe_dump({"models": [{
            "id": "upstream", "provider": "openai_compatible", "api_base": f"{fake.url}/v1",
            "api_key_env": "REPLICAS_UPSTREAM_KEY", "price_per_image": 0.01, "retries": 0}]}))
        env = {
            "RETOUCH_DATABASE_URL": create_database(postgres_base_url), "RETOUCH_REDIS_URL": redis_url,
            "RETOUCH_STORAGE": "s3", "RETOUCH_S3_ENDPOINT_URL": s3_endpoint, "RETOUCH_S3_REGION": REGION,
            "RETOUCH_S3_BUCKET": create_bucket(s3_endpoint), "RETOUCH_ADMIN_KEY": ADMIN_KEY,
            "RETOUCH_SIGNING_KEY": "replicas-share-this-signing-secret", "RETOUCH_MODELS_FILE": str(models),
            "REPLICAS_UPSTREAM_KEY": UPSTREAM_KEY, **CREDENTIALS,
        }
        with retouch_serve(root / "a", env) as first, retouch_serve(root / "b", env) as second:
            yield Replicas(first.base, second.base, fake, release)


def new_key(base: str, **limits) -> str:
    made = httpx.post(f"{base}/admin/keys", json={"name": "replicated", **limits},
                      headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)
    assert made.status_code == 201, made.text
    return made.json()["key"]


def edit(base: str, key: str, *, headers: dict | None = None, **fields) -> httpx.Response:
    return httpx.post(f"{base}/v1/images/edits", timeout=60,
                      headers={"authorization": f"Bearer {key}", **(headers or {})},
                      data={"prompt": "grayscale", **fields},
                      files={"image": ("a.png", png(gradient(24, 16)), "image/png")})


def test_a_key_made_on_one_replica_works_on_the_other_and_its_revocation_too(replicas):
    key = new_key(replicas.first)
    assert edit(replicas.second, key).status_code == 200
    revoked = httpx.delete(f"{replicas.second}/admin/keys/{key[:10]}",
                           headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert revoked.status_code == 200
    assert edit(replicas.first, key).status_code == 401


def test_a_rate_limit_is_shared_by_the_replicas(replicas):
    key = new_key(replicas.first, rpm=3)
    answers = [edit(base, key) for base in (replicas.first, replicas.second, replicas.first, replicas.second)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers.get("x-ratelimit-remaining-requests") for a in answers[:3]] == ["2", "1", "0"]
    assert int(answers[3].headers["retry-after"]) >= 1


def test_an_output_stored_by_one_replica_is_served_by_the_other(replicas):
    key = new_key(replicas.first)
    answer = edit(replicas.first, key)
    url = answer.json()["data"][0]["url"]
    downloaded = httpx.get(url)  # a presigned link straight to the bucket
    assert downloaded.status_code == 200 and decode(downloaded.content).shape[:2] == (16, 24)
    name = httpx.URL(url).path.rsplit("/", 1)[1]
    via_other = httpx.get(f"{replicas.second}/files/{name}")
    assert via_other.status_code == 200 and via_other.content == downloaded.content


def test_an_idempotent_retry_on_the_other_replica_gets_the_first_answer(replicas):
    key = new_key(replicas.first)
    before = replicas.upstream.submissions
    once = {"Idempotency-Key": "order-4711"}
    first = edit(replicas.first, key, headers=once, model="upstream", response_format="b64_json")
    again = edit(replicas.second, key, headers=once, model="upstream", response_format="b64_json")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers.get("idempotent-replayed") == "true"
    assert replicas.upstream.submissions == before + 1  # billed once
    other = edit(replicas.second, key, headers=once, model="upstream", prompt="invert")
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"


def test_a_concurrent_duplicate_on_the_other_replica_waits_for_the_first(replicas):
    key = new_key(replicas.first)
    before = replicas.upstream.submissions
    once = {"Idempotency-Key": "order-4712"}
    replicas.release.clear()
    try:
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(edit, replicas.first, key, headers=once, model="upstream",
                                response_format="b64_json")
            _wait_for(lambda: replicas.upstream.submissions == before + 1)
            second = pool.submit(edit, replicas.second, key, headers=once, model="upstream",
                                 response_format="b64_json")
            assert not second.done()
            replicas.release.set()
            answers = [first.result(60), second.result(60)]
    finally:
        replicas.release.set()
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json()["data"] == answers[1].json()["data"]
    assert base64.b64decode(answers[1].json()["data"][0]["b64_json"]) == GRAY_PNG
    assert replicas.upstream.submissions == before + 1


def _wait_for(condition, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)
