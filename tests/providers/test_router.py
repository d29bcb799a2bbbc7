"""The router: one model id over several deployments, retries only while no provider has
taken the job, rest after repeated failures, fallbacks last."""

from __future__ import annotations

import base64
import contextlib
import random
from collections.abc import Callable, Iterator

import anyio
import httpx
import pytest
import yaml

from retouch.errors import ContentPolicyError, InvalidRequestError, RetouchError, UpstreamError
from retouch.providers.base import EditJob, EditModel, EditResult, OutputImage
from retouch.providers.hosted import CURRENT_ATTEMPT
from retouch.providers.registry import ConfigError, ModelRegistry
from retouch.providers.router import Deployment, RoutedEditModel, order_deployments, weighted_order
from tests.images import decode, gradient, png, solid
from tests.providers.fake_openai import FakeOpenAI, error_reply, images_reply, running_fake
from tests.servers import running_retouch

KEY = "sk-fake-upstream-key"
FIRST, LAST = 1e6, 1e-6  # weights that fix the order: u^(1/w) is ~1 for FIRST, ~0 for LAST


# -- in-process deployments -------------------------------------------------------------


class Scripted(EditModel):
    """A backend that plays ``steps`` in turn (the last one repeats): "ok", "accept-then-fail"
    (takes the job, then loses it) or an error to raise before taking it."""

    provider = "scripted"
    supports_generation = True

    def __init__(self, name: str, *steps: object, **flags: object) -> None:
        super().__init__("routed")
        self.name, self.steps, self.calls = name, list(steps or ["ok"]), 0
        self.active = self.most_active = 0
        for flag, value in flags.items():
            setattr(self, flag, value)

    async def edit(self, job: EditJob) -> EditResult:
        self.calls += 1
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            for _ in range(5):  # let other jobs run, so overlap shows if allowed
                await anyio.lowlevel.checkpoint()
            step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
            if step == "accept-then-fail":
                CURRENT_ATTEMPT.get().accepted = True
                raise UpstreamError("the provider lost the job after queueing it")
            if isinstance(step, RetouchError):
                raise step
            return EditResult(images=[OutputImage(data=self.name.encode())])
        finally:
            self.active -= 1


def routed(*deployments: Deployment, **config: object) -> RoutedEditModel:
    model = RoutedEditModel("routed", config={
        "deployments": list(deployments), "retry_base_delay_s": 0, **config})
    model.rng = random.Random(0)
    return model


def job() -> EditJob:
    return EditJob(prompt="x", images=[])


def served_by(result: EditResult) -> str:
    return result.images[0].data.decode()


# -- ordering ---------------------------------------------------------------------------


def test_weighted_order_gives_first_place_in_proportion_to_weight():
    light, heavy = Deployment(Scripted("light"), weight=1), Deployment(Scripted("heavy"), weight=3)
    rng = random.Random(1234)
    firsts = [weighted_order([light, heavy], rng)[0] for _ in range(1000)]
    assert abs(firsts.count(heavy) / 1000 - 0.75) < 0.04
    assert all(len(set(weighted_order([light, heavy], rng))) == 2 for _ in range(10))


def test_least_busy_and_lowest_latency_orders():
    busy, idle = Deployment(Scripted("busy"), in_flight=3), Deployment(Scripted("idle"), in_flight=1)
    rng = random.Random(0)
    assert order_deployments([busy, idle], "least-busy", rng) == [idle, busy]
    slow = Deployment(Scripted("slow"), latency_s=9.0)
    fast = Deployment(Scripted("fast"), latency_s=2.0)
    untried = Deployment(Scripted("untried"))
    assert order_deployments([slow, fast, untried], "lowest-latency", rng) == [untried, fast, slow]


# -- retries and their limits -------------------------------------------------------------


@pytest.mark.anyio
async def test_retries_move_on_and_wrap_around():
    a = Scripted("a", UpstreamError("down"), "ok")
    b = Scripted("b", UpstreamError("down"))
    model = routed(Deployment(a, weight=FIRST), Deployment(b, weight=LAST), retries=2)
    assert served_by(await model.edit(job())) == "a"
    assert (a.calls, b.calls) == (2, 1)  # a, b, then a again


@pytest.mark.anyio
async def test_accepted_job_is_never_resubmitted_nor_sent_to_a_fallback():
    a, b, backup = Scripted("a", "accept-then-fail"), Scripted("b"), Scripted("backup")
    model = routed(Deployment(a, weight=FIRST), Deployment(b, weight=LAST), retries=2)
    model.fallbacks = [backup]
    with pytest.raises(UpstreamError, match="lost the job"):
        await model.edit(job())
    assert (a.calls, b.calls, backup.calls) == (1, 0, 0)


@pytest.mark.parametrize("error", [
    InvalidRequestError("bad size", param="size"),
    ContentPolicyError("blocked", param="prompt"),
    UpstreamError("bad key", code="upstream_auth_failed"),
])
@pytest.mark.anyio
async def test_client_errors_are_raised_at_once(error):
    a, b, backup = Scripted("a", error), Scripted("b"), Scripted("backup")
    model = routed(Deployment(a, weight=FIRST), Deployment(b, weight=LAST))
    model.fallbacks = [backup]
    with pytest.raises(type(error)):
        await model.edit(job())
    assert (a.calls, b.calls, backup.calls) == (1, 0, 0)


@pytest.mark.anyio
async def test_fallbacks_run_in_order_after_retries_are_spent():
    a = Scripted("a", UpstreamError("down"))
    broken, backup = Scripted("broken", UpstreamError("also down")), Scripted("backup")
    backup.id = "backup"
    model = routed(Deployment(a), retries=1)
    model.fallbacks = [broken, backup]
    result = await model.edit(job())
    assert served_by(result) == "backup" and result.extra["served_by"] == "backup"
    assert (a.calls, broken.calls, backup.calls) == (2, 1, 1)


# -- health -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_deployment_rests_after_allowed_fails_then_is_tried_again():
    now = [100.0]
    flaky = Scripted("flaky", UpstreamError("down"), UpstreamError("down"), "ok")
    model = routed(Deployment(flaky, allowed_fails=2, cooldown_s=30), retries=0)
    model.clock = lambda: now[0]
    for _ in range(2):
        with pytest.raises(UpstreamError, match="down"):
            await model.edit(job())
    with pytest.raises(UpstreamError, match="resting") as resting:
        await model.edit(job())
    assert flaky.calls == 2 and resting.value.headers["retry-after"] == "30"
    now[0] += 31
    assert served_by(await model.edit(job())) == "flaky"
    assert model.deployments[0].fails == 0


@pytest.mark.parametrize("limit, overlap", [(1, 1), (None, 3)])
@pytest.mark.anyio
async def test_max_concurrency_keeps_jobs_apart(limit, overlap):
    busy = Scripted("busy")
    model = routed(Deployment(busy, max_concurrency=limit))
    async with anyio.create_task_group() as group:
        for _ in range(3):
            group.start_soon(model.edit, job())
    assert (busy.calls, busy.most_active) == (3, overlap)


# -- configuration --------------------------------------------------------------------------


def test_capabilities_are_what_every_deployment_supports():
    wide = Scripted("wide", max_input_images=16, supports_mask=True, supports_generation=True,
                    max_n=10, output_formats=("png", "jpeg", "webp"))
    narrow = Scripted("narrow", max_input_images=3, supports_mask=False, supports_generation=True,
                      max_n=4, output_formats=("webp", "png"))
    caps = routed(Deployment(wide), Deployment(narrow)).capabilities()
    assert (caps.max_input_images, caps.supports_mask, caps.supports_generation, caps.max_n) == (
        3, False, True, 4)
    assert caps.output_formats == ["png", "webp"]


def write_models(tmp_path, models: list[dict]):
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump({"models": models}))
    return path


def test_unknown_fallback_is_a_config_error(tmp_path):
    path = write_models(tmp_path, [{"id": "pair", "fallbacks": ["no-such-model"], "deployments": [
        {"provider": "openai_compatible", "api_base": "http://127.0.0.1:9/v1"}]}])
    with pytest.raises(ConfigError, match="no-such-model"):
        ModelRegistry.from_files(path, "retouch/basic")


def test_every_deployment_checks_the_options(tmp_path):
    path = write_models(tmp_path, [{"id": "pair", "deployments": [
        {"provider": "openai_compatible", "api_base": "http://127.0.0.1:9/v1"},
        {"provider": "openai_compatible", "api_base": "http://127.0.0.1:8/v1", "weight": 2}]}])
    model = ModelRegistry.from_files(path, "retouch/basic").resolve("pair")
    assert model.parse_options({"negative_prompt": "fog"}).raw == {"negative_prompt": "fog"}
    with pytest.raises(InvalidRequestError, match="moderation"):
        model.parse_options({"moderation": "low"})


# -- through retouch's HTTP API ---------------------------------------------------------------


@pytest.fixture(scope="module")
def upstreams() -> Iterator[list[FakeOpenAI]]:
    """Three fake upstreams for the whole module: stopping a server takes ~0.2 s."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(running_fake(FakeOpenAI(key=KEY))) for _ in range(3)]


@pytest.fixture
def fakes(upstreams) -> Callable[..., list[FakeOpenAI]]:
    """``fakes(reply, …)``: as many upstreams as replies, each answering its reply."""
    def answering(*replies) -> list[FakeOpenAI]:
        for fake, reply in zip(upstreams, replies):
            fake.received.clear()
            fake.reply = reply
        return upstreams[:len(replies)]
    return answering


def deployment(fake: FakeOpenAI, **extra) -> dict:
    return {"provider": "openai_compatible", "api_base": f"{fake.url}/v1", "model": "up",
            "api_key_env": "ROUTER_TEST_KEY", "timeout": 5, **extra}


def pair(a: FakeOpenAI, b: FakeOpenAI, **extra) -> dict:
    return {"id": "pair", "retries": 2, "retry_base_delay_s": 0.001, "retry_max_delay_s": 0.01,
            "deployments": [deployment(a, weight=FIRST, price_per_image=0.5),
                            deployment(b, weight=LAST, price_per_image=0.25)], **extra}


def post_edit(make_settings, tmp_path, models: list[dict]) -> httpx.Response:
    settings = make_settings(models_file=write_models(tmp_path, models), data_dir=tmp_path / "var")
    with running_retouch(settings) as url:
        return httpx.post(f"{url}/v1/images/edits", timeout=30,
                          data={"model": "pair", "prompt": "x", "response_format": "b64_json"},
                          files={"image": ("a.png", png(gradient()), "image/png")})


def colour_of(response: httpx.Response) -> list[int]:
    return decode(base64.b64decode(response.json()["data"][0]["b64_json"]))[0, 0].tolist()


@pytest.fixture(autouse=True)
def upstream_key(monkeypatch):
    monkeypatch.setenv("ROUTER_TEST_KEY", KEY)


def test_failing_deployment_hands_over_and_its_price_is_not_charged(fakes, make_settings, tmp_path):
    a, b = fakes(error_reply(503, "overloaded", type="server_error"),
                 images_reply(png(solid((0, 200, 0)))))
    response = post_edit(make_settings, tmp_path, [pair(a, b)])
    assert response.status_code == 200, response.text
    assert colour_of(response) == [0, 200, 0]
    assert (a.submissions, b.submissions) == (1, 1)
    assert response.headers["x-retouch-model"] == "pair"
    assert response.headers["x-retouch-cost-usd"] == "0.250000"


def test_fallback_model_serves_when_every_deployment_fails(fakes, make_settings, tmp_path):
    down = error_reply(502, "bad gateway", type="server_error")
    a, b, c = fakes(down, down, images_reply(png(solid((0, 0, 200)))))
    backup = {"id": "backup", **deployment(c), "price_per_image": 0.1}
    response = post_edit(make_settings, tmp_path, [pair(a, b, fallbacks=["backup"]), backup])
    assert response.status_code == 200, response.text
    assert colour_of(response) == [0, 0, 200]
    assert (a.submissions, b.submissions, c.submissions) == (2, 1, 1)
    assert response.headers["x-retouch-model"] == "backup"
    assert response.headers["x-retouch-cost-usd"] == "0.100000"


def test_rate_limits_are_retried_then_surfaced_with_retry_after(fakes, make_settings, tmp_path):
    limited = error_reply(429, "slow down", type="rate_limit_error", headers={"retry-after": "7"})
    a, b = fakes(limited, limited)
    response = post_edit(make_settings, tmp_path, [pair(a, b)])
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert (a.submissions, b.submissions) == (2, 1)


def test_upstream_client_error_is_not_retried(fakes, make_settings, tmp_path):
    a, b = fakes(error_reply(400, "size is not supported"), images_reply(png(solid((1, 2, 3)))))
    response = post_edit(make_settings, tmp_path, [pair(a, b)])
    assert response.status_code == 400
    assert "size is not supported" in response.json()["error"]["message"]
    assert (a.submissions, b.submissions) == (1, 0)


@pytest.mark.anyio
async def test_timeouts_after_sending_are_never_resubmitted():
    from retouch.errors import UpstreamTimeoutError
    from retouch.providers.hosted import Attempt
    from retouch.providers.router import retryable

    assert not retryable(UpstreamTimeoutError("no answer"), Attempt())
