"""Managed keys' limits through a running retouch: requests per minute (429 with
retry-after and x-ratelimit-* headers), images per day (failed requests cost none),
monthly budgets (402 insufficient_balance) and allowed models (403)."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.images import gradient, png
from tests.servers import running_retouch

ADMIN_KEY = "quotas-admin-key-0123456789"
PRICED = "models:\n  - id: priced-basic\n    provider: basic\n    price_per_image: 0.04\n"


@pytest.fixture
def server(make_settings, tmp_path):
    models = tmp_path / "models.yaml"
    models.write_text(PRICED)
    with running_retouch(make_settings(admin_key=ADMIN_KEY, models_file=models)) as url:
        yield url


def new_key(base: str, **limits) -> str:
    made = httpx.post(f"{base}/admin/keys", json={"name": "limited", **limits},
                      headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert made.status_code == 201, made.text
    return made.json()["key"]


def edit(base: str, key: str, **fields) -> httpx.Response:
    return httpx.post(f"{base}/v1/images/edits", headers={"authorization": f"Bearer {key}"}, timeout=30,
                      data={"prompt": "grayscale", **{k: str(v) for k, v in fields.items()}},
                      files={"image": ("a.png", png(gradient(12, 8)), "image/png")})


def test_a_limit_of_n_per_minute_admits_exactly_n(server):
    key = new_key(server, rpm=3)
    answers = [edit(server, key) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["x-ratelimit-remaining-requests"] for a in answers] == ["2", "1", "0", "0"]
    assert all(a.headers["x-ratelimit-limit-requests"] == "3" for a in answers)
    refused = answers[3]
    # The burst weighs on the next minute too: one more fits 20 s into it (3 × 2/3 + 1 = 3).
    assert 20 <= int(refused.headers["retry-after"]) <= 80
    assert refused.headers["x-ratelimit-reset-requests"].endswith("s")
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert "3 requests per minute" in error["message"]


def test_the_openai_client_sees_a_rate_limit_error(server):
    key = new_key(server, rpm=1)
    client = openai.OpenAI(base_url=f"{server}/v1", api_key=key, max_retries=0)
    client.images.edit(image=("a.png", png(gradient(8, 8)), "image/png"), prompt="grayscale")
    with pytest.raises(openai.RateLimitError) as refused:
        client.images.edit(image=("a.png", png(gradient(8, 8)), "image/png"), prompt="grayscale")
    assert refused.value.response.headers["retry-after"]


def test_images_per_day_count_images_and_failed_requests_cost_none(server):
    key = new_key(server, images_per_day=3)
    failed = edit(server, key, n=2, prompt="make it look like a unicorn painted it")
    assert failed.status_code == 422  # the engine cannot: the two images are given back
    first = edit(server, key, n=2)
    assert first.status_code == 200 and first.headers["x-ratelimit-remaining-images"] == "1"
    over = edit(server, key, n=2)
    assert over.status_code == 429 and "1 are left" in over.json()["error"]["message"]
    assert int(over.headers["retry-after"]) <= 86_400
    assert edit(server, key, n=1).status_code == 200
    whole_day = edit(server, key, n=4)
    assert whole_day.status_code == 429 and whole_day.json()["error"]["param"] == "n"
    assert whole_day.headers["x-should-retry"] == "false"


def test_a_monthly_budget_is_a_402_naming_the_cap(server):
    key = new_key(server, monthly_budget_usd=0.10)
    spent = edit(server, key, model="priced-basic", n=2)
    assert spent.status_code == 200 and spent.headers["x-retouch-cost-usd"] == "0.080000"
    refused = edit(server, key, model="priced-basic", n=1)  # 0.08 + 0.04 > 0.10
    assert refused.status_code == 402 and refused.headers["x-should-retry"] == "false"
    error = refused.json()["error"]
    assert error["code"] == "insufficient_balance"
    assert "Monthly budget" in error["message"] and "$0.10" in error["message"] and "$0.08" in error["message"]
    assert edit(server, key, model="retouch/basic").status_code == 200  # a free model still runs


def test_the_budget_holds_after_a_restart(make_settings, tmp_path):
    models = tmp_path / "models.yaml"
    models.write_text(PRICED)
    settings = make_settings(admin_key=ADMIN_KEY, models_file=models)
    with running_retouch(settings) as first:
        key = new_key(first, monthly_budget_usd=0.05)
        assert edit(first, key, model="priced-basic").status_code == 200
    with running_retouch(settings) as second:  # spend comes from the usage log, not memory
        assert edit(second, key, model="priced-basic").status_code == 402


def test_a_key_may_use_only_its_models(server):
    key = new_key(server, models=["priced-basic"])
    refused = edit(server, key, model="retouch/basic")
    assert refused.status_code == 403 and refused.json()["error"]["param"] == "model"
    assert "priced-basic" in refused.json()["error"]["message"]
    assert edit(server, key, model="priced-basic").status_code == 200


def test_without_the_usage_log_a_budget_cannot_be_kept_and_says_so(make_settings):
    with running_retouch(make_settings(admin_key=ADMIN_KEY, usage_log=False)) as base:
        key = new_key(base, monthly_budget_usd=5)
        refused = edit(base, key)
        assert refused.status_code == 503 and "RETOUCH_USAGE_LOG" in refused.json()["error"]["message"]
        assert edit(base, new_key(base, rpm=10)).status_code == 200


def test_keys_without_limits_carry_no_rate_headers(server):
    answer = edit(server, new_key(server))
    assert answer.status_code == 200
    assert not [name for name in answer.headers if name.startswith("x-ratelimit")]


def test_a_revoked_key_is_refused_before_its_limits_count(server):
    key = new_key(server, rpm=1)
    httpx.delete(f"{server}/admin/keys/{key[:10]}", headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert edit(server, key).status_code == 401
