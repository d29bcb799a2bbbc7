"""``Idempotency-Key`` through a running retouch, in front of a fake upstream that counts
what it is asked to make (each ask is billed upstream)."""

from __future__ import annotations

import base64
import socket
import threading
import time
from urllib.parse import urlparse

import httpx
import openai
import pytest
import yaml

from tests.images import gradient, png
from tests.providers.fake_openai import (
    GRAY_PNG,
    FakeOpenAI,
    error_reply,
    held_reply,
    running_fake,
)
from tests.servers import running_retouch

UPSTREAM_KEY = "sk-idempotency-upstream-0123456789"


@pytest.fixture
def upstream(monkeypatch):
    monkeypatch.setenv("IDEMPOTENCY_UPSTREAM_KEY", UPSTREAM_KEY)
    with running_fake(FakeOpenAI(key=UPSTREAM_KEY)) as fake:
        yield fake


@pytest.fixture
def server(upstream, make_settings, tmp_path):
    models = tmp_path / "models.yaml"
    models.write_text(yaml.safe_dump({"models": [{
        "id": "upstream", "provider": "openai_compatible", "api_base": f"{upstream.url}/v1",
        "api_key_env": "IDEMPOTENCY_UPSTREAM_KEY", "price_per_image": 0.04, "retries": 0}]}))
    with running_retouch(make_settings(models_file=models)) as url:
        yield url


def edit(base: str, key: str | None, **fields) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return httpx.post(f"{base}/v1/images/edits", headers=headers, timeout=30,
                      data={"model": "upstream", "prompt": "grayscale", "response_format": "b64_json", **fields},
                      files={"image": ("a.png", png(gradient(12, 8)), "image/png")})


def test_a_retry_gets_the_first_answer_and_the_upstream_is_asked_once(server, upstream):
    first, again = edit(server, "order-1"), edit(server, "order-1")  # new multipart boundaries each
    assert first.status_code == again.status_code == 200
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert again.headers["x-retouch-model"] == "upstream" and again.headers["x-retouch-cost-usd"] == "0.040000"
    assert upstream.submissions == 1
    assert edit(server, None).status_code == 200 and upstream.submissions == 2  # no key: runs again


def test_the_openai_client_retrying_with_a_key_is_billed_once(server, upstream):
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)
    made = [client.images.edit(model="upstream", image=("a.png", png(gradient(8, 8)), "image/png"),
                               prompt="grayscale", response_format="b64_json",
                               extra_headers={"Idempotency-Key": "client-retry-1"}) for _ in range(2)]
    assert made[0].data[0].b64_json == made[1].data[0].b64_json
    assert base64.b64decode(made[0].data[0].b64_json) == GRAY_PNG and upstream.submissions == 1


def test_the_same_key_with_another_request_is_409_and_not_retried(server, upstream):
    assert edit(server, "order-2").status_code == 200
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=2)
    with pytest.raises(openai.ConflictError) as refused:
        client.images.edit(model="upstream", image=("a.png", png(gradient(12, 8)), "image/png"),
                           prompt="invert", response_format="b64_json",
                           extra_headers={"Idempotency-Key": "order-2"})
    assert refused.value.body["code"] == "idempotency_key_reused"
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert upstream.submissions == 1


def test_a_failed_run_is_not_kept_and_its_retry_runs_again(server, upstream):
    upstream.replies = [error_reply(500, "the GPU caught fire", type="server_error")]
    assert edit(server, "order-3").status_code == 502
    retried = edit(server, "order-3")
    assert retried.status_code == 200 and "idempotent-replayed" not in retried.headers
    assert upstream.submissions == 2


def test_a_client_that_hangs_up_leaves_the_job_running_for_its_retry(server, upstream):
    release = threading.Event()
    upstream.reply = held_reply(release)
    request = httpx.Client().build_request(
        "POST", f"{server}/v1/images/edits", headers={"Idempotency-Key": "order-4"},
        data={"model": "upstream", "prompt": "grayscale", "response_format": "b64_json"},
        files={"image": ("a.png", png(gradient(12, 8)), "image/png")})
    address = urlparse(server)
    with socket.create_connection((address.hostname, address.port)) as conn:
        head = "POST /v1/images/edits HTTP/1.1\r\nHost: x\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in request.headers.items() if k.lower() != "host") + "\r\n"
        conn.sendall(head.encode() + request.read())
        _wait_for(lambda: upstream.submissions == 1)
    release.set()  # the client is gone; its job finishes and keeps the answer
    retried = edit(server, "order-4")
    assert retried.status_code == 200 and base64.b64decode(retried.json()["data"][0]["b64_json"]) == GRAY_PNG
    assert upstream.submissions == 1


def test_a_streamed_answer_is_replayed_as_a_stream(server, upstream):
    first, again = edit(server, "order-5", stream="true"), edit(server, "order-5", stream="true")
    assert first.headers["content-type"].startswith("text/event-stream")
    assert again.headers["content-type"] == first.headers["content-type"] and again.text == first.text
    assert "event: image_edit.completed" in again.text and upstream.submissions == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "emoji-\u00e9"])
def test_an_unusable_key_is_400_naming_the_header(server, upstream, key):
    answer = httpx.post(f"{server}/v1/images/edits", headers=[("Idempotency-Key", key.encode("utf-8"))],
                        data={"model": "upstream", "prompt": "grayscale"},
                        files={"image": ("a.png", png(gradient(8, 8)), "image/png")})
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "Idempotency-Key"
    assert upstream.submissions == 0


def test_keys_of_different_callers_do_not_collide(upstream, make_settings, tmp_path):
    models = tmp_path / "models.yaml"
    models.write_text(yaml.safe_dump({"models": [{
        "id": "upstream", "provider": "openai_compatible", "api_base": f"{upstream.url}/v1",
        "api_key_env": "IDEMPOTENCY_UPSTREAM_KEY", "retries": 0}]}))
    with running_retouch(make_settings(models_file=models, api_keys="caller-one-key-0001,caller-two-key-0002")) as base:
        for caller in ("caller-one-key-0001", "caller-two-key-0002"):
            answer = httpx.post(f"{base}/v1/images/edits", timeout=30,
                                headers={"Idempotency-Key": "shared", "authorization": f"Bearer {caller}"},
                                data={"model": "upstream", "prompt": "grayscale"},
                                files={"image": ("a.png", png(gradient(8, 8)), "image/png")})
            assert answer.status_code == 200 and "idempotent-replayed" not in answer.headers
    assert upstream.submissions == 2


def _wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)
