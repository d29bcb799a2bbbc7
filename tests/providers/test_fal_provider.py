"""The fal backend: the input it builds, and its queue dance against a fake fal on 127.0.0.1."""

from __future__ import annotations

import base64
import io

import numpy as np
import openai
import pytest
import yaml

from retouch.errors import (
    ContentPolicyError,
    InvalidRequestError,
    UpstreamError,
    UpstreamTimeoutError,
)
from retouch.inputs import InputImage, Slot
from retouch.providers.base import EditJob
from retouch.providers.fal import FalEditModel, FalOptions, ModelShape, build_arguments, nearest_aspect_ratio
from retouch.providers.registry import ConfigError
from tests.images import decode, encode, gradient, png, solid
from tests.providers.fake_fal import RESULT, FakeFal, running_fake_fal
from tests.servers import running_retouch

KEY = "fal-key-5c1d9e77-secret"
KONTEXT = ModelShape("image_url", "aspect_ratio")
MULTI = ModelShape("image_urls", "image_size")


def image(pixels: np.ndarray, fmt: str = "PNG", index: int = 0) -> InputImage:
    data = encode(pixels, fmt)
    return InputImage(io.BytesIO(data), fmt, (pixels.shape[1], pixels.shape[0]), Slot("image", index))


def job(**fields) -> EditJob:
    fields.setdefault("images", [image(gradient())])
    fields.setdefault("options", FalOptions())
    return EditJob(prompt="make it dusk", **fields)


def data_url_bytes(url: str) -> bytes:
    header, _, payload = url.partition(",")
    assert header.startswith("data:image/") and header.endswith(";base64")
    return base64.b64decode(payload)


async def run_edit(model: FalEditModel, edit_job: EditJob):
    try:
        return await model.edit(edit_job)
    finally:
        await model.aclose()


@pytest.fixture
def fake():
    with running_fake_fal(FakeFal()) as server:
        yield server


@pytest.fixture
def make_model(fake, monkeypatch):
    monkeypatch.setenv("FAL_KEY", KEY)

    def make(**config) -> FalEditModel:
        config = {"model": "fal-ai/flux-pro/kontext", "api_base": fake.base_url, "poll_interval": 0.01,
                  "max_poll_interval": 0.02, "timeout": 5, **config}
        return FalEditModel("fal/flux-kontext", config=config)

    return make


# -- the input built ---------------------------------------------------------------------


def test_single_image_model_gets_image_url_and_nearest_aspect_ratio():
    first = image(gradient(), "JPEG")
    arguments, dropped = build_arguments(job(images=[first], n=3, seed=7, size=(1536, 1024),
                                             quality="high"), KONTEXT)
    assert data_url_bytes(arguments["image_url"]) == first.read_bytes()
    assert arguments["image_url"].startswith("data:image/jpeg;base64,")
    assert (arguments["num_images"], arguments["seed"], arguments["aspect_ratio"]) == (3, 7, "3:2")
    assert arguments["output_format"] == "png" and "image_urls" not in arguments
    assert dropped == ["quality"]


def test_multi_image_model_gets_images_in_order_and_image_size():
    images = [image(solid((200, 0, 0)), index=0), image(solid((0, 0, 200)), index=1),
              image(gradient(), "WEBP", index=2)]
    arguments, dropped = build_arguments(job(images=images, size=(1024, 768)), MULTI)
    assert [data_url_bytes(u) for u in arguments["image_urls"]] == [i.read_bytes() for i in images]
    assert arguments["image_size"] == {"width": 1024, "height": 768}
    assert "aspect_ratio" not in arguments and "seed" not in arguments and dropped == []


@pytest.mark.parametrize(("size", "ratio"), [((1024, 1024), "1:1"), ((1920, 1080), "16:9"),
                                             ((1024, 1536), "2:3"), ((3000, 1000), "21:9"),
                                             ((768, 1024), "3:4")])
def test_size_maps_to_nearest_aspect_ratio(size, ratio):
    assert nearest_aspect_ratio(*size) == ratio


def test_options_forwarded_under_fal_names():
    options = FalOptions.model_validate({"guidance_scale": "3.5", "safety_tolerance": "2",
                                         "negative_prompt": "blur", "num_inference_steps": 28,
                                         "enable_safety_checker": "false", "acceleration": "high"})
    arguments, _ = build_arguments(job(options=options, output_format="jpeg"), MULTI)
    assert arguments["guidance_scale"] == 3.5 and arguments["safety_tolerance"] == "2"
    assert arguments["negative_prompt"] == "blur" and arguments["num_inference_steps"] == 28
    assert arguments["enable_safety_checker"] is False and arguments["acceleration"] == "high"
    assert arguments["output_format"] == "jpeg"


def test_webp_output_asks_fal_for_png():
    arguments, _ = build_arguments(job(output_format="webp"), KONTEXT)
    assert arguments["output_format"] == "png"


def test_unknown_option_is_400_naming_it():
    with pytest.raises(InvalidRequestError) as caught:
        FalEditModel("fal/x", config={}).parse_options({"strength": 0.4})
    assert caught.value.param == "strength"


@pytest.mark.parametrize(("fields", "param"), [
    ({"size": (512, 512)}, "size"),
    ({"background": "transparent"}, "background"),
    ({"size": (512, 512), "options": FalOptions(aspect_ratio="16:9")}, "aspect_ratio"),
])
def test_fields_fal_cannot_honour_are_400_naming_them(fields, param):
    shape = ModelShape("image_url", "none" if param == "size" else "aspect_ratio")
    with pytest.raises(InvalidRequestError) as caught:
        build_arguments(job(**fields), shape)
    assert caught.value.param == param


def test_mask_goes_as_mask_url_white_where_transparent():
    alpha = np.full((48, 64), 255, np.uint8)
    alpha[:, :32] = 0  # left half: edit here
    mask = image(np.dstack([np.zeros((48, 64, 3), np.uint8), alpha]))
    arguments, _ = build_arguments(job(mask=mask), ModelShape("image_url", "none", supports_mask=True))
    sent = decode(data_url_bytes(arguments["mask_url"]))
    assert sent[:, :32].min() == 255 and sent[:, 32:].max() == 0


def test_capabilities_follow_the_model_family():
    single = FalEditModel("a", config={"model": "fal-ai/flux-pro/kontext"})
    several = FalEditModel("b", config={"image_field": "image_urls", "size_field": "image_size"})
    capped = FalEditModel("c", config={"image_field": "image_urls", "max_input_images": 4,
                                       "supports_mask": True, "max_n": 2})
    assert (single.max_input_images, single.supports_mask, single.supports_generation) == (1, False, False)
    assert several.max_input_images == 10
    assert (capped.max_input_images, capped.supports_mask, capped.max_n) == (4, True, 2)


def test_unknown_image_field_is_a_config_error():
    with pytest.raises(ConfigError, match="image_field"):
        FalEditModel("a", config={"image_field": "input_image"})


def test_missing_key_makes_model_unavailable_with_fix(monkeypatch):
    monkeypatch.delenv("FAL_KEY", raising=False)
    availability = FalEditModel("a", config={}).availability()
    assert not availability.available and "FAL_KEY" in availability.fix


# -- the queue -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_queue_polled_until_completed_after_one_submission(fake, make_model):
    fake.states = ["IN_QUEUE", "IN_QUEUE", "IN_PROGRESS", "IN_PROGRESS", "COMPLETED"]
    result = await run_edit(make_model(), job(n=2, seed=5))
    assert len(fake.submissions) == 1 and len(fake.status_queries) == 5
    submitted = fake.submissions[0]
    assert submitted.model == "fal-ai/flux-pro/kontext"
    assert submitted.headers["authorization"] == f"Key {KEY}"
    body = submitted.body
    assert (body["prompt"], body["num_images"], body["seed"]) == ("make it dusk", 2, 5)
    assert set(fake.status_queries) == {"logs=0"} and set(fake.status_auth) == {f"Key {KEY}"}
    assert fake.result_reads == 1 and fake.cancels == []
    assert len(result.images) == 2 and result.images[0].content_type == "image/png"
    assert np.array_equal(decode(result.images[0].data), RESULT)
    assert result.extra["seed"] == 1234 and result.extra["request_id"] == fake.accepted[0]


@pytest.mark.anyio
async def test_transient_status_errors_are_polled_through_without_resubmitting(fake, make_model):
    fake.status_failures = 3
    result = await run_edit(make_model(), job())
    assert len(fake.submissions) == 1 and len(fake.status_queries) == 3 + 3
    assert np.array_equal(decode(result.images[0].data), RESULT)


@pytest.mark.anyio
async def test_deadline_cancels_the_job_and_answers_504(fake, make_model):
    fake.states = ["IN_PROGRESS"]
    with pytest.raises(UpstreamTimeoutError) as caught:
        await run_edit(make_model(timeout=0.3), job())
    assert caught.value.status == 504 and "cancelled" in caught.value.message
    assert fake.cancels == fake.accepted and len(fake.submissions) == 1
    assert fake.result_reads == 0


@pytest.mark.anyio
async def test_error_status_is_502_with_fals_message(fake, make_model):
    fake.final_status = {"status": "COMPLETED", "error": "Runner crashed: CUDA out of memory",
                         "error_type": "runner_server_error"}
    with pytest.raises(UpstreamError) as caught:
        await run_edit(make_model(), job())
    assert caught.value.status == 502 and "CUDA out of memory" in caught.value.message
    assert fake.result_reads == 0 and len(fake.submissions) == 1


@pytest.mark.anyio
async def test_unknown_failed_state_is_502(fake, make_model):
    fake.final_status = {"status": "FAILED", "detail": "Request timed out"}
    with pytest.raises(UpstreamError, match="FAILED: Request timed out"):
        await run_edit(make_model(), job())


@pytest.mark.anyio
async def test_validation_error_is_400_with_fals_message(fake, make_model):
    fake.result_error = (422, {"detail": [{"loc": ["body", "image_url"], "msg": "Image is too large",
                                           "type": "image_too_large"}]})
    with pytest.raises(InvalidRequestError) as caught:
        await run_edit(make_model(), job())
    assert caught.value.status == 400 and "image_url: Image is too large" in caught.value.message


@pytest.mark.anyio
async def test_nsfw_flagged_result_is_content_block_and_not_fetched(fake, make_model):
    fake.nsfw = True
    with pytest.raises(ContentPolicyError):
        await run_edit(make_model(), job())
    assert fake.file_reads == []


@pytest.mark.anyio
async def test_status_url_on_foreign_host_is_refused_unfollowed(fake, make_model):
    fake.queue_base = fake.base_url.replace("127.0.0.1", "localhost")  # same server, other host
    with pytest.raises(UpstreamError, match="unexpected host") as caught:
        await run_edit(make_model(), job())
    assert caught.value.status == 502
    assert fake.status_queries == [] and fake.result_reads == 0 and fake.cancels == []


@pytest.mark.anyio
async def test_expired_result_url_is_502(fake, make_model):
    fake.image_url = f"{fake.base_url}/files/expired.png"
    with pytest.raises(UpstreamError, match="404") as caught:
        await run_edit(make_model(), job())
    assert caught.value.status == 502 and fake.file_reads == ["expired.png"]


@pytest.mark.anyio
async def test_result_on_foreign_host_is_never_fetched(fake, make_model):
    fake.image_url = fake.base_url.replace("127.0.0.1", "localhost") + "/files/result.png"
    with pytest.raises(UpstreamError, match="unexpected host") as caught:
        await run_edit(make_model(), job())
    assert caught.value.status == 502 and fake.file_reads == []


# -- through retouch's HTTP API --------------------------------------------------------------


@pytest.fixture
def retouch_with_fal(fake, make_settings, monkeypatch, tmp_path):
    monkeypatch.setenv("FAL_KEY", KEY)
    models = tmp_path / "models.yaml"
    models.write_text(yaml.safe_dump({"models": [{
        "id": "fal/flux-kontext", "provider": "fal", "model": "fal-ai/flux-pro/kontext",
        "api_base": fake.base_url, "poll_interval": 0.01, "max_poll_interval": 0.02, "timeout": 5,
    }]}))
    with running_retouch(make_settings(models_file=models)) as base:
        yield base


def test_openai_client_edit_end_to_end(fake, retouch_with_fal):
    client = openai.OpenAI(base_url=f"{retouch_with_fal}/v1", api_key="sk-unused", max_retries=0)
    upload = png(gradient())
    result = client.images.edit(model="fal/flux-kontext", image=("in.png", upload, "image/png"),
                                prompt="make it dusk", n=2, size="1536x1024",
                                response_format="b64_json", extra_body={"seed": 9, "guidance_scale": 3.5})
    assert len(result.data) == 2
    assert np.array_equal(decode(base64.b64decode(result.data[1].b64_json)), RESULT)
    assert len(fake.submissions) == 1
    sent = fake.submissions[0].body
    assert data_url_bytes(sent["image_url"]) == upload
    assert (sent["num_images"], sent["aspect_ratio"], sent["seed"]) == (2, "3:2", 9)
    assert sent["guidance_scale"] == 3.5


