"""The Replicate adapter: the request it builds, and retouch's answers against a fake Replicate."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import openai
import pytest
import yaml
from PIL import Image

from retouch.config import Settings
from retouch.errors import InvalidRequestError
from retouch.inputs import InputImage, Slot
from retouch.providers.base import EditJob
from retouch.providers.replicate import (
    InputSchema,
    ReplicateEditModel,
    ReplicateOptions,
    build_request,
    check_job,
    nearest_aspect_ratio,
)
from retouch.providers.hosted import unused_quality
from tests.images import decode, gradient, png, solid
from tests.providers.fake_replicate import TOKEN, running_fake_replicate
from tests.servers import running_retouch

KONTEXT = {"model": "black-forest-labs/flux-kontext-pro", "image_field": "input_image",
           "poll_interval": 0.005, "timeout": 5}
SEEDREAM = {"model": "bytedance/seedream-4", "image_field": "image_input", "max_input_images": 10,
            "output_format_field": None, "poll_interval": 0.005, "timeout": 5}
MULTI = {**KONTEXT, "model": "acme/multi", "n_field": "num_outputs"}
SLOW = {**KONTEXT, "timeout": 0.3}


# -- fixtures: one fake Replicate and one retouch for the module -------------------------


@pytest.fixture(scope="module")
def fake():
    with running_fake_replicate() as fake:
        yield fake


@pytest.fixture(autouse=True)
def fresh_fake(fake):
    fake.reset()


@pytest.fixture(scope="module")
def retouch_url(fake, tmp_path_factory):
    api_base = f"{fake.base_url}/v1"
    models = [{"id": name, "provider": "replicate", "api_base": api_base, **config}
              for name, config in [("rep/kontext", KONTEXT), ("rep/seedream", SEEDREAM),
                                   ("rep/multi", MULTI), ("rep/slow", SLOW),
                                   ("rep/files", {**SEEDREAM, "files_threshold": 2000, "retry_base_delay_s": 0.01})]]
    folder = tmp_path_factory.mktemp("replicate")
    (folder / "models.yaml").write_text(yaml.safe_dump({"models": models}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REPLICATE_API_TOKEN", TOKEN)
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


def from_data_url(url: str) -> bytes:
    header, _, payload = url.partition(",")
    assert header == "data:image/png;base64"
    return base64.b64decode(payload)


# -- the request, built without a network ------------------------------------------------


def test_kontext_input_carries_one_data_url_ratio_seed_and_format():
    source = png(gradient())
    method, path, kwargs = build_request(
        job(images=[input_image(source)], size=(1536, 1024), seed=7, output_format="jpeg"),
        InputSchema.from_config(KONTEXT, 1), model="black-forest-labs/flux-kontext-pro",
        wait=60, deadline=300)
    assert (method, path) == ("POST", "/models/black-forest-labs/flux-kontext-pro/predictions")
    assert kwargs["headers"] == {"Prefer": "wait=60", "Cancel-After": "300s"}
    sent = kwargs["json"]["input"]
    assert from_data_url(sent.pop("input_image")) == source
    assert sent == {"prompt": "make it blue", "aspect_ratio": "3:2", "seed": 7, "output_format": "jpg"}


def test_seedream_takes_every_image_in_order_as_a_list():
    first, second = png(solid((200, 0, 0))), png(solid((0, 0, 200)))
    _, _, kwargs = build_request(job(images=[input_image(first), input_image(second, 1)]),
                                 InputSchema.from_config(SEEDREAM, 10), model="bytedance/seedream-4",
                                 wait=60, deadline=300)
    sent = kwargs["json"]["input"]
    assert [from_data_url(url) for url in sent["image_input"]] == [first, second]
    assert "output_format" not in sent and "num_outputs" not in sent


def test_n_goes_to_the_declared_count_field():
    _, _, kwargs = build_request(job(n=3), InputSchema.from_config(MULTI, 1), model="acme/multi",
                                 wait=60, deadline=300)
    assert kwargs["json"]["input"]["num_outputs"] == 3


def test_options_are_forwarded_into_input():
    options = ReplicateOptions(safety_tolerance=2, prompt_upsampling=True, aspect_ratio="match_input_image")
    _, _, kwargs = build_request(job(options=options), InputSchema.from_config(KONTEXT, 1),
                                 model="m/n", wait=60, deadline=300)
    sent = kwargs["json"]["input"]
    assert (sent["safety_tolerance"], sent["prompt_upsampling"], sent["aspect_ratio"]) == (
        2, True, "match_input_image")


@pytest.mark.parametrize(("size", "ratio"), [((1024, 1024), "1:1"), ((1920, 1080), "16:9"),
                                             ((1080, 1920), "9:16"), ((1000, 750), "4:3"),
                                             ((2560, 1080), "21:9"), ((1024, 1536), "2:3")])
def test_size_maps_to_the_nearest_aspect_ratio(size, ratio):
    assert nearest_aspect_ratio(*size) == ratio


def test_quality_is_dropped_and_listed():
    assert unused_quality(job(quality="high")) == ["quality"]
    assert unused_quality(job(quality="auto")) == []


@pytest.mark.parametrize(("fields", "schema", "param"), [
    ({"background": "transparent"}, KONTEXT, "background"),
    ({"size": (1024, 1024)}, {**KONTEXT, "size_field": None}, "size"),
    ({"size": (1024, 1024), "options": ReplicateOptions(aspect_ratio="1:1")}, KONTEXT, "aspect_ratio"),
    ({"images": [input_image(png()), input_image(png(), 1)]}, KONTEXT, "image"),
])
def test_requests_the_model_would_get_wrong_are_400s_naming_the_param(fields, schema, param):
    with pytest.raises(InvalidRequestError) as caught:
        check_job(job(**fields), InputSchema.from_config(schema, 1), "rep/kontext")
    assert caught.value.param == param


def test_missing_token_makes_the_model_unavailable_with_the_fix(monkeypatch):
    monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)
    availability = ReplicateEditModel("rep/kontext", config=KONTEXT).availability()
    assert not availability.available and "REPLICATE_API_TOKEN" in availability.fix


# -- through retouch's HTTP API, with the official openai client ---------------------------


def test_openai_client_edit_returns_the_pixels_replicate_made(images_api, fake):
    made = gradient(40, 30)[::-1]
    fake.script.images = [png(made)]
    result = images_api.edit(model="rep/kontext", image=upload(gradient()), prompt="turn it upside down",
                             response_format="b64_json")
    assert np.array_equal(decode(base64.b64decode(result.data[0].b64_json)), made)
    [sent] = fake.submissions
    assert sent.model == "black-forest-labs/flux-kontext-pro"
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["prefer"] == "wait=5" and sent.headers["cancel-after"] == "5s"
    assert from_data_url(sent.input["input_image"]) == png(gradient())
    assert sent.input["prompt"] == "turn it upside down" and sent.input["output_format"] == "png"
    assert fake.polls == []  # answered in sync mode


def test_prediction_is_polled_until_it_succeeds(images_api, fake):
    fake.script.polls_until_done = 3
    fake.script.output_as_list = False  # a single URL, as Kontext answers
    result = images_api.edit(model="rep/kontext", image=upload(gradient()), prompt="x",
                             response_format="b64_json")
    assert np.array_equal(decode(base64.b64decode(result.data[0].b64_json)), gradient())
    assert len(fake.polls) == 3 and len(fake.submissions) == 1


def test_inline_data_url_output_is_decoded(images_api, fake):
    fake.script.images = [png(solid((10, 200, 30)))]
    fake.script.output_inline = True
    result = images_api.edit(model="rep/kontext", image=upload(gradient()), prompt="x",
                             response_format="b64_json")
    assert np.array_equal(decode(base64.b64decode(result.data[0].b64_json)), solid((10, 200, 30)))
    assert fake.fetches == []


def test_n_without_a_count_field_runs_n_predictions_with_successive_seeds(images_api, fake):
    red, blue = solid((220, 0, 0)), solid((0, 0, 220))
    fake.script.images = [png(red), png(blue)]
    result = images_api.edit(model="rep/kontext", image=upload(gradient()), prompt="x", n=2,
                             response_format="b64_json", extra_body={"seed": 10})
    outs = [decode(base64.b64decode(d.b64_json)) for d in result.data]
    assert np.array_equal(outs[0], red) and np.array_equal(outs[1], blue)
    assert [s.input["seed"] for s in fake.submissions] == [10, 11]


def test_n_with_a_count_field_is_one_prediction(images_api, fake):
    fake.script.images = [png(solid((220, 0, 0))), png(solid((0, 0, 220)))]
    result = images_api.edit(model="rep/multi", image=upload(gradient()), prompt="x", n=2,
                             response_format="b64_json")
    assert len(result.data) == 2
    [sent] = fake.submissions
    assert sent.input["num_outputs"] == 2


def test_seedream_gets_every_uploaded_image_in_order(images_api, fake):
    red, blue = solid((220, 0, 0)), solid((0, 0, 220))
    images_api.edit(model="rep/seedream", image=[upload(red, "r.png"), upload(blue, "b.png")],
                    prompt="restyle", size="1920x1080", response_format="b64_json")
    [sent] = fake.submissions
    assert [from_data_url(u) for u in sent.input["image_input"]] == [png(red), png(blue)]
    assert sent.input["aspect_ratio"] == "16:9"


def test_webp_is_asked_as_png_and_transcoded(images_api, fake):
    result = images_api.edit(model="rep/kontext", image=upload(gradient()), prompt="x",
                             output_format="webp", response_format="b64_json")
    assert base64.b64decode(result.data[0].b64_json)[8:12] == b"WEBP"
    assert fake.submissions[0].input["output_format"] == "png"


def test_sensitive_content_failure_is_a_content_policy_violation(images_api, fake):
    fake.script.polls_until_done = 1
    fake.script.status = "failed"
    fake.script.error = ("The input or output was flagged as sensitive. Please try again with "
                         "different inputs. (E005)")
    with pytest.raises(openai.BadRequestError) as caught:
        images_api.edit(model="rep/kontext", image=upload(gradient()), prompt="x")
    assert caught.value.code == "content_policy_violation"
    assert fake.cancels == []  # it had ended; nothing to cancel


def test_other_failure_is_502_with_replicates_error(images_api, fake):
    fake.script.status, fake.script.error = "failed", "CUDA out of memory"
    with pytest.raises(openai.InternalServerError) as caught:
        images_api.edit(model="rep/kontext", image=upload(gradient()), prompt="x")
    assert caught.value.status_code == 502 and "CUDA out of memory" in caught.value.message


def test_slow_submission_is_504(images_api, fake):
    fake.script.submit_delay = 3
    with pytest.raises(openai.APIStatusError) as caught:
        images_api.edit(model="rep/slow", image=upload(gradient()), prompt="x")
    assert caught.value.status_code == 504
    assert fake.submissions[0].headers["cancel-after"] == "1s"


def test_stuck_prediction_is_canceled_at_the_deadline_not_resubmitted(images_api, fake):
    fake.script.polls_until_done = 10**6
    with pytest.raises(openai.APIStatusError) as caught:
        images_api.edit(model="rep/slow", image=upload(gradient()), prompt="x")
    assert caught.value.status_code == 504
    assert fake.cancels == ["p1xyz"] and len(fake.submissions) == 1 and len(fake.polls) >= 1


def test_failed_poll_is_502_cancels_and_never_resubmits(images_api, fake):
    fake.script.polls_until_done, fake.script.poll_status = 2, 500
    with pytest.raises(openai.InternalServerError) as caught:
        images_api.edit(model="rep/kontext", image=upload(gradient()), prompt="x")
    assert caught.value.status_code == 502
    assert len(fake.submissions) == 1 and fake.cancels == ["p1xyz"]


def test_expired_result_url_is_502(images_api, fake):
    fake.script.result_status = 404
    with pytest.raises(openai.InternalServerError) as caught:
        images_api.edit(model="rep/kontext", image=upload(gradient()), prompt="x")
    assert caught.value.status_code == 502 and len(fake.fetches) == 1


def test_result_on_a_foreign_host_is_502_and_never_fetched(images_api, fake):
    fake.script.output_base = fake.base_url.replace("127.0.0.1", "localhost")
    with pytest.raises(openai.InternalServerError) as caught:
        images_api.edit(model="rep/kontext", image=upload(gradient()), prompt="x")
    assert caught.value.status_code == 502 and "localhost" in caught.value.message
    assert fake.fetches == []


def test_poll_url_on_another_host_is_replaced_by_the_api_base(images_api, fake):
    fake.script.polls_until_done = 1
    fake.script.get_url_base = fake.base_url.replace("127.0.0.1", "localhost")
    images_api.edit(model="rep/kontext", image=upload(gradient()), prompt="x", response_format="b64_json")
    assert [poll["host"] for poll in fake.polls] == [fake.base_url.removeprefix("http://")]


def test_unknown_model_field_is_a_400_naming_it(retouch_url):
    response = httpx.post(f"{retouch_url}/v1/images/edits", timeout=10, json={
        "model": "rep/kontext", "prompt": "x", "num_steps": 4,
        "images": [{"image_url": "data:image/png;base64," + base64.b64encode(png()).decode()}]})
    assert response.status_code == 400 and response.json()["error"]["param"] == "num_steps"


# -- cancellation when the client goes away -----------------------------------------------




# -- large inputs through the Files API ---------------------------------------------------


def noise(width: int = 64, height: int = 64, seed: int = 0) -> np.ndarray:
    """Pixels that do not compress: a PNG of them is ~12 kB, above rep/files' threshold."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_inputs_above_the_threshold_go_through_the_files_api_and_are_deleted(images_api, fake):
    large, small = noise(), solid((0, 0, 200), 8, 8)
    images_api.edit(model="rep/files", image=[upload(large), upload(small, "b.png")], prompt="x")
    assert len(fake.uploads) == 1 and np.array_equal(decode(fake.uploads[0].data), large)
    assert fake.uploads[0].content_type == "image/png"
    sent = fake.submissions[0].input["image_input"]
    assert sent[0] == f"{fake.base_url}/v1/files/{fake.uploads[0].id}"
    assert np.array_equal(decode(from_data_url(sent[1])), small)
    assert np.array_equal(decode(fake.submissions[0].images[0]), large)  # the model read it
    assert fake.deleted_files == [fake.uploads[0].id]


def test_uploaded_inputs_are_deleted_when_the_prediction_fails(images_api, fake):
    fake.script.status, fake.script.error = "failed", "CUDA out of memory"
    with pytest.raises(openai.InternalServerError):
        images_api.edit(model="rep/files", image=upload(noise()), prompt="x")
    assert len(fake.uploads) == 1 and fake.deleted_files == [fake.uploads[0].id]


def test_a_failed_upload_is_retried_without_any_prediction(images_api, fake):
    fake.script.upload_status = 503
    with pytest.raises(openai.InternalServerError):
        images_api.edit(model="rep/files", image=upload(noise()), prompt="x")
    assert fake.submissions == [] and fake.upload_attempts == 3  # 1 + 2 retries: nothing accepted
