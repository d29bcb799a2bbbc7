"""The Black Forest Labs adapter: the request it builds, and retouch's answers against a fake BFL."""

from __future__ import annotations

import base64
import io

import numpy as np
import openai
import pytest
import yaml
from PIL import Image

from retouch.config import Settings
from retouch.errors import InvalidRequestError
from retouch.inputs import InputImage, Slot
from retouch.providers.base import EditJob
from retouch.providers.bfl import (
    BflEditModel,
    BflOptions,
    allowed_polling_url,
    build_request,
    check_job,
)
from retouch.providers.hosted import unused_quality
from tests.images import decode, gradient, png, solid
from tests.providers.fake_bfl import KEY, running_fake_bfl
from tests.servers import running_retouch

KONTEXT = {"model": "flux-kontext-pro", "poll_interval": 0.005, "timeout": 5}
MULTI = {**KONTEXT, "model": "flux-kontext-max", "max_input_images": 4}
SLOW = {**KONTEXT, "timeout": 0.3}


# -- fixtures: one fake BFL and one retouch for the module -------------------------------


@pytest.fixture(scope="module")
def fake():
    with running_fake_bfl() as fake:
        yield fake


@pytest.fixture(autouse=True)
def fresh_fake(fake):
    fake.reset()


@pytest.fixture(scope="module")
def retouch_url(fake, tmp_path_factory):
    api_base = f"{fake.base_url}/v1"
    models = [{"id": name, "provider": "bfl", "api_base": api_base, **config}
              for name, config in [("bfl/kontext", KONTEXT), ("bfl/multi", MULTI), ("bfl/slow", SLOW)]]
    folder = tmp_path_factory.mktemp("bfl")
    (folder / "models.yaml").write_text(yaml.safe_dump({"models": models}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BFL_API_KEY", KEY)
        settings = Settings(_env_file=None, data_dir=folder / "var", models_file=folder / "models.yaml")
        with running_retouch(settings) as url:
            yield url


@pytest.fixture
def images_api(retouch_url):
    return openai.OpenAI(base_url=f"{retouch_url}/v1", api_key="unused", max_retries=0).images


def upload(pixels: np.ndarray, name: str = "a.png") -> tuple[str, bytes, str]:
    return (name, png(pixels), "image/png")


def input_image(data: bytes, index: int = 0) -> InputImage:
    with Image.open(io.BytesIO(data)) as img:
        fmt, size = img.format, img.size
    return InputImage(io.BytesIO(data), fmt, size, Slot("image", index))


def job(**fields) -> EditJob:
    fields.setdefault("prompt", "make it blue")
    fields.setdefault("images", [input_image(png(gradient()))])
    return EditJob(**fields)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# -- the request, built without a network ------------------------------------------------


def test_kontext_body_has_bare_base64_ratio_seed_and_format():
    source = png(gradient())
    method, path, kwargs = build_request(
        job(images=[input_image(source)], size=(1024, 1536), seed=7, output_format="jpeg"),
        model="flux-kontext-pro")
    assert (method, path) == ("POST", "/flux-kontext-pro")
    assert kwargs["json"] == {"prompt": "make it blue", "input_image": b64(source),
                              "aspect_ratio": "2:3", "seed": 7, "output_format": "jpeg"}
    assert "x-key" not in kwargs["headers"]  # the key is added at send time, never built in


def test_references_go_to_input_image_2_to_4_in_order():
    sources = [png(solid((c, 0, 0))) for c in (10, 20, 30)]
    _, _, kwargs = build_request(job(images=[input_image(s, i) for i, s in enumerate(sources)]),
                                 model="flux-kontext-max")
    body = kwargs["json"]
    assert [body["input_image"], body["input_image_2"], body["input_image_3"]] == [b64(s) for s in sources]
    assert "input_image_4" not in body


def test_generation_sends_no_image_and_webp_asks_for_png():
    _, _, kwargs = build_request(job(images=[], output_format="webp"), model="flux-kontext-pro")
    assert "input_image" not in kwargs["json"] and kwargs["json"]["output_format"] == "png"


def test_options_are_forwarded():
    options = BflOptions(safety_tolerance=4, prompt_upsampling=True, aspect_ratio="21:9")
    _, _, kwargs = build_request(job(options=options), model="flux-kontext-pro")
    body = kwargs["json"]
    assert (body["safety_tolerance"], body["prompt_upsampling"], body["aspect_ratio"]) == (4, True, "21:9")


def test_quality_is_dropped_and_listed():
    assert unused_quality(job(quality="high")) == ["quality"]
    assert unused_quality(job()) == []


@pytest.mark.parametrize(("fields", "param"), [
    ({"background": "transparent"}, "background"),
    ({"size": (1024, 1024), "options": BflOptions(aspect_ratio="1:1")}, "aspect_ratio"),
])
def test_requests_bfl_would_get_wrong_are_400s_naming_the_param(fields, param):
    with pytest.raises(InvalidRequestError) as caught:
        check_job(job(**fields), "bfl/kontext")
    assert caught.value.param == param


@pytest.mark.parametrize(("url", "allowed"), [
    ("https://api.bfl.ai/v1/get_result?id=1", True),
    ("https://api.eu.bfl.ai/v1/get_result?id=1", True),
    ("https://api.us1.bfl.ai/v1/get_result?id=1", True),
    ("http://api.bfl.ai/v1/get_result?id=1", False),  # the key would travel in clear
    ("https://bfl.ai.attacker.example/v1/get_result", False),
    ("https://evilbfl.ai/v1/get_result", False),
    ("https://api.bfl.ai@attacker.example/v1/get_result", False),
    ("http://127.0.0.1:9999/v1/get_result?id=1", True),  # the configured API base
    ("http://127.0.0.1:9998/v1/get_result?id=1", False),  # same host, another port
    ("not a url at all", False),
])
def test_polling_urls_the_key_may_go_to(url, allowed):
    assert allowed_polling_url(url, "http://127.0.0.1:9999/v1") is allowed


def test_references_are_capped_at_four_and_default_to_one():
    assert BflEditModel("a", config={"max_input_images": 9}).max_input_images == 4
    assert BflEditModel("b").max_input_images == 1


def test_missing_key_makes_the_model_unavailable_with_the_fix(monkeypatch):
    monkeypatch.delenv("BFL_API_KEY", raising=False)
    availability = BflEditModel("bfl/kontext", config=KONTEXT).availability()
    assert not availability.available and "BFL_API_KEY" in availability.fix


# -- through retouch's HTTP API, with the official openai client ---------------------------


def test_openai_client_edit_returns_the_pixels_bfl_made(images_api, fake):
    made = gradient(40, 30)[:, ::-1]
    fake.script.images = [png(made)]
    result = images_api.edit(model="bfl/kontext", image=upload(gradient()), prompt="mirror it",
                             size="1920x1080", response_format="b64_json")
    assert np.array_equal(decode(base64.b64decode(result.data[0].b64_json)), made)
    [sent] = fake.submissions
    assert sent.model == "flux-kontext-pro" and sent.headers["x-key"] == KEY
    assert sent.body == {"prompt": "mirror it", "input_image": b64(png(gradient())),
                         "aspect_ratio": "16:9", "output_format": "png"}
    assert [poll["x-key"] for poll in fake.polls] == [KEY]
    [fetch] = fake.fetches
    assert "se=short-lived" in fetch["url"] and "x-key" not in fetch  # the key stays with the API


def test_job_is_polled_through_pending_until_ready(images_api, fake):
    fake.script.polls_until_done = 3
    result = images_api.edit(model="bfl/kontext", image=upload(gradient()), prompt="x",
                             response_format="b64_json")
    assert np.array_equal(decode(base64.b64decode(result.data[0].b64_json)), gradient())
    assert len(fake.polls) == 4 and len(fake.submissions) == 1


def test_n_runs_n_jobs_with_successive_seeds(images_api, fake):
    red, blue = solid((220, 0, 0)), solid((0, 0, 220))
    fake.script.images = [png(red), png(blue)]
    result = images_api.edit(model="bfl/kontext", image=upload(gradient()), prompt="x", n=2,
                             response_format="b64_json", extra_body={"seed": 10})
    outs = [decode(base64.b64decode(d.b64_json)) for d in result.data]
    assert np.array_equal(outs[0], red) and np.array_equal(outs[1], blue)
    assert [s.body["seed"] for s in fake.submissions] == [10, 11]


def test_several_uploads_become_kontext_references(images_api, fake):
    uploads = [solid((200, 0, 0)), solid((0, 200, 0)), solid((0, 0, 200))]
    images_api.edit(model="bfl/multi", image=[upload(p, f"{i}.png") for i, p in enumerate(uploads)],
                    prompt="combine", response_format="b64_json")
    body = fake.submissions[0].body
    assert [body["input_image"], body["input_image_2"], body["input_image_3"]] == [
        b64(png(p)) for p in uploads]


@pytest.mark.parametrize("status", ["Request Moderated", "Content Moderated"])
def test_moderation_is_a_content_policy_violation(images_api, fake, status):
    fake.script.status, fake.script.details = status, {"Moderation Reasons": ["Derivative Works"]}
    with pytest.raises(openai.BadRequestError) as caught:
        images_api.edit(model="bfl/kontext", image=upload(gradient()), prompt="x")
    assert caught.value.code == "content_policy_violation"
    assert "Derivative Works" in caught.value.message and fake.fetches == []


@pytest.mark.parametrize("status", ["Error", "Failed", "Task not found"])
def test_failed_job_is_502(images_api, fake, status):
    fake.script.status = status
    with pytest.raises(openai.InternalServerError) as caught:
        images_api.edit(model="bfl/kontext", image=upload(gradient()), prompt="x")
    assert caught.value.status_code == 502 and status in caught.value.message


def test_missing_polling_url_falls_back_to_get_result_on_the_api_base(images_api, fake):
    fake.script.polling_base = None
    result = images_api.edit(model="bfl/kontext", image=upload(gradient()), prompt="x",
                             response_format="b64_json")
    assert np.array_equal(decode(base64.b64decode(result.data[0].b64_json)), gradient())
    assert [poll["host"] for poll in fake.polls] == [fake.base_url.removeprefix("http://")]


def test_job_pending_past_the_deadline_is_504_and_not_resubmitted(images_api, fake):
    fake.script.polls_until_done = 10**6
    with pytest.raises(openai.APIStatusError) as caught:
        images_api.edit(model="bfl/slow", image=upload(gradient()), prompt="x")
    assert caught.value.status_code == 504
    assert len(fake.submissions) == 1 and len(fake.polls) >= 1


def test_failed_poll_is_502_and_never_resubmits(images_api, fake):
    fake.script.poll_status = 500
    with pytest.raises(openai.InternalServerError) as caught:
        images_api.edit(model="bfl/kontext", image=upload(gradient()), prompt="x")
    assert caught.value.status_code == 502 and len(fake.submissions) == 1


def test_expired_sample_url_is_502(images_api, fake):
    fake.script.sample_status = 403
    with pytest.raises(openai.InternalServerError) as caught:
        images_api.edit(model="bfl/kontext", image=upload(gradient()), prompt="x")
    assert caught.value.status_code == 502 and len(fake.fetches) == 1


def test_sample_on_a_foreign_host_is_502_and_never_fetched(images_api, fake):
    fake.script.sample_base = fake.base_url.replace("127.0.0.1", "localhost")
    with pytest.raises(openai.InternalServerError) as caught:
        images_api.edit(model="bfl/kontext", image=upload(gradient()), prompt="x")
    assert caught.value.status_code == 502 and "localhost" in caught.value.message
    assert fake.fetches == []


def test_polling_url_on_a_foreign_host_is_502_and_never_polled(images_api, fake):
    fake.script.polling_base = fake.base_url.replace("127.0.0.1", "localhost")
    with pytest.raises(openai.InternalServerError) as caught:
        images_api.edit(model="bfl/kontext", image=upload(gradient()), prompt="x")
    assert caught.value.status_code == 502 and "localhost" in caught.value.message
    assert fake.polls == [] and len(fake.submissions) == 1
