"""``/metrics`` after real requests through a running retouch."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest
import yaml

from retouch.observability.metrics import Metrics
from tests.images import png
from tests.observability.conftest import metric, retouch_serve, scrape
from tests.providers.fake_openai import (
    GRAY_PNG,
    FakeOpenAI,
    error_reply,
    held_reply,
    images_reply,
    running_fake,
)
from tests.servers import running_retouch

UPSTREAM_KEY = "sk-metrics-upstream-key-0123456789"


def edit(client: httpx.Client, **fields) -> httpx.Response:
    data = {"prompt": "grayscale", **{k: str(v) for k, v in fields.items()}}
    return client.post("/v1/images/edits", data=data, files={"image": ("a.png", png(), "image/png")})


def test_a_basic_edit_is_counted_by_route_model_provider_and_images(settings):
    with running_retouch(settings) as base, httpx.Client(base_url=base, timeout=30) as client:
        assert edit(client, n=2).status_code == 200
        text = scrape(base)
    route = {"method": "POST", "route": "/v1/images/edits", "status": "200"}
    model = {"model": "retouch/basic", "provider": "basic"}
    assert metric(text, "retouch_http_requests_total", **route) == 1
    assert metric(text, "retouch_http_request_duration_seconds_count", **route) == 1
    assert metric(text, "retouch_http_request_duration_seconds_sum", **route) > 0
    assert metric(text, "retouch_image_requests_total", **model, status="200") == 1
    assert metric(text, "retouch_image_request_duration_seconds_count", **model, status="200") == 1
    assert metric(text, "retouch_images_total", **model) == 2
    assert metric(text, "retouch_cost_usd_total", **model) == 0  # the built-in engine is free
    assert metric(text, "retouch_build_info") == 1


def test_model_labels_are_catalogue_ids_never_what_the_client_typed(settings):
    with running_retouch(settings) as base, httpx.Client(base_url=base, timeout=30) as client:
        assert edit(client, model="basic").status_code == 200  # an alias
        assert edit(client, model="no-such-model-7f3a").status_code == 404
        assert client.get("/v1/no/such/route/7f3a").status_code == 404
        text = scrape(base)
    assert metric(text, "retouch_image_requests_total", model="retouch/basic", status="200") == 1
    assert metric(text, "retouch_image_requests_total", model="unknown", provider="unknown", status="404") == 1
    assert metric(text, "retouch_http_requests_total", route="unmatched", status="404") == 1
    assert "7f3a" not in text


def test_failed_requests_count_under_their_status(settings):
    with running_retouch(settings) as base, httpx.Client(base_url=base, timeout=30) as client:
        assert edit(client, prompt="").status_code == 400
        text = scrape(base)
    assert metric(text, "retouch_http_requests_total", route="/v1/images/edits", status="400") == 1
    assert metric(text, "retouch_image_requests_total", status="400") == 1
    assert metric(text, "retouch_images_total") == 0


@pytest.fixture
def upstream(monkeypatch):
    monkeypatch.setenv("METRICS_UPSTREAM_KEY", UPSTREAM_KEY)
    with running_fake(FakeOpenAI(key=UPSTREAM_KEY)) as fake:
        yield fake


def priced_settings(make_settings, tmp_path, fake: FakeOpenAI):
    models_file = tmp_path / "models.yaml"
    models_file.write_text(yaml.safe_dump({"models": [{
        "id": "priced-upstream", "provider": "openai_compatible", "api_base": f"{fake.url}/v1",
        "api_key_env": "METRICS_UPSTREAM_KEY", "model": "their-model", "price_per_image": 0.04,
        "retries": 0}]}))
    return make_settings(models_file=models_file)


def test_cost_and_upstream_errors_are_counted_per_model_and_provider(upstream, make_settings, tmp_path):
    upstream.replies = [images_reply(GRAY_PNG, GRAY_PNG), error_reply(500, "the GPU caught fire", type="server_error")]
    with running_retouch(priced_settings(make_settings, tmp_path, upstream)) as base, \
            httpx.Client(base_url=base, timeout=30) as client:
        assert edit(client, model="priced-upstream", n=2).status_code == 200
        assert edit(client, model="priced-upstream").status_code == 502
        text = scrape(base)
    model = {"model": "priced-upstream", "provider": "openai_compatible"}
    assert metric(text, "retouch_cost_usd_total", **model) == pytest.approx(0.08)
    assert metric(text, "retouch_images_total", **model) == 2
    assert metric(text, "retouch_image_requests_total", **model, status="502") == 1
    assert metric(text, "retouch_upstream_errors_total", **model, code="upstream_error") == 1


def test_in_flight_counts_the_requests_being_served(upstream, make_settings, tmp_path):
    release = threading.Event()
    upstream.reply = held_reply(release)
    with running_retouch(priced_settings(make_settings, tmp_path, upstream)) as base, \
            httpx.Client(base_url=base, timeout=30) as client, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(edit, client, model="priced-upstream")
        _wait_for(lambda: upstream.submissions == 1)
        during = metric(scrape(base), "retouch_http_requests_in_flight")
        release.set()
        assert pending.result().status_code == 200
        after = metric(scrape(base), "retouch_http_requests_in_flight")
    assert (during, after) == (2, 1)  # the held edit and the scrape itself; then the scrape


def test_each_app_counts_in_its_own_registry():
    first, second = Metrics(), Metrics()
    first.observe_http("GET", "/healthz", 200, 0.001)
    assert metric(first.render()[0].decode(), "retouch_http_requests_total", route="/healthz") == 1
    assert metric(second.render()[0].decode(), "retouch_http_requests_total", route="/healthz") == 0


def test_workers_report_the_sum_over_all_processes(tmp_path):
    with retouch_serve(tmp_path, {}, "--workers", "2") as served:
        _wait_for(lambda: len(psutil.Process(served.process.pid).children()) >= 2, timeout=60)
        for _ in range(6):  # a new connection each: the kernel spreads them over the workers
            with httpx.Client(base_url=served.base, timeout=30) as client:
                assert edit(client).status_code == 200
        counts = {metric(scrape(served.base), "retouch_image_requests_total",
                         model="retouch/basic", status="200") for _ in range(6)}
    assert counts == {6}


def _wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)
