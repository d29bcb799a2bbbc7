"""``X-Request-ID``: honoured when sane, generated otherwise, echoed on every response."""

from __future__ import annotations

import io
import json
import logging
import re

import httpx
import pytest
from fastapi import FastAPI

from retouch.api.errors import install_error_handlers
from retouch.observability.logs import (
    JsonFormatter,
    RequestIdFilter,
    RequestIdMiddleware,
)
from tests.images import png
from tests.servers import running_retouch, serving

GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def base(make_settings):
    with running_retouch(make_settings(api_keys="sk-request-id-test-key")) as url:
        yield url


def test_an_id_is_generated_for_each_request_without_one(base):
    with httpx.Client(base_url=base) as client:
        first, second = client.get("/healthz"), client.get("/healthz")
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert all(GENERATED.fullmatch(i) for i in ids) and ids[0] != ids[1]


@pytest.mark.parametrize("incoming", ["abc-123_DEF.456", "f47ac10b-58cc-4372-a567-0e02b2c3d479",
                                      "Root=1-5f84c7a9-2d3c1b0e:span/7+x=="])
def test_a_sane_incoming_id_is_echoed(base, incoming):
    answer = httpx.get(f"{base}/healthz", headers={"x-request-id": incoming})
    assert answer.headers.get_list("x-request-id") == [incoming]


@pytest.mark.parametrize("incoming", ["x" * 129, "two words", "id\"><script>", "é-accent", "a;b"])
def test_an_insane_incoming_id_is_replaced(base, incoming):
    answer = httpx.get(f"{base}/healthz", headers={"x-request-id": incoming.encode("utf-8")})
    assert GENERATED.fullmatch(answer.headers["x-request-id"])


def test_error_responses_carry_the_id(base):
    with httpx.Client(base_url=base, headers={"x-request-id": "err-1"}) as client:
        unauthorized = client.post("/v1/images/edits", data={"prompt": "grayscale"},
                                   headers={"authorization": "Bearer sk-wrong-key"},
                                   files={"image": ("a.png", png(), "image/png")})
        bad = client.post("/v1/images/edits", data={"prompt": ""},
                          headers={"authorization": "Bearer sk-request-id-test-key"},
                          files={"image": ("a.png", png(), "image/png")})
        missing = client.get("/no/such/route")
    assert [r.status_code for r in (unauthorized, bad, missing)] == [401, 400, 404]
    assert all(r.headers["x-request-id"] == "err-1" for r in (unauthorized, bad, missing))
    assert unauthorized.json()["error"]["code"] == "invalid_api_key"


def test_unexpected_errors_carry_the_id_in_the_answer_and_the_log():
    # Starlette answers unexpected errors outside user middleware: the error handler must
    # echo the id itself, and its log line must still know it.
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)

    @app.get("/boom")
    async def boom():
        raise RuntimeError("a bug")

    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("retouch.api")
    logger.addHandler(handler)
    try:
        with serving(app) as url:
            answer = httpx.get(f"{url}/boom", headers={"x-request-id": "boom-7"})
    finally:
        logger.removeHandler(handler)
    assert answer.status_code == 500 and answer.json()["error"]["type"] == "api_error"
    assert answer.headers["x-request-id"] == "boom-7"
    logged = [json.loads(line) for line in lines.getvalue().splitlines()]
    assert [(e["request_id"], "a bug" in e["exception"]) for e in logged] == [("boom-7", True)]
