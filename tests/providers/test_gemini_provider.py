"""The ``gemini`` backend against a fake Gemini API speaking ``generateContent``."""

from __future__ import annotations

import base64
import io
import logging

import httpx
import numpy as np
import openai
import pytest
import yaml

from retouch.errors import ContentPolicyError, InvalidRequestError, UpstreamError
from retouch.inputs import InputImage, Slot
from retouch.providers.base import EditJob
from retouch.providers.gemini import (
    GeminiEditModel,
    GeminiOptions,
    build_request,
    nearest_aspect_ratio,
    parse_response,
)
from tests.images import decode, encode, gradient, png, solid
from tests.providers.fake_gemini import FakeGemini, Reply, running
from tests.servers import running_retouch

KEY = "AIza-test-key-0123456789"
UPSTREAM_MODEL = "gemini-2.5-flash-image"
RESULT = gradient(40, 30)[:, ::-1].copy()  # what the fake "draws"


def input_image(pixels: np.ndarray, fmt: str = "PNG", index: int = 0) -> InputImage:
    data = encode(pixels, fmt)
    return InputImage(io.BytesIO(data), fmt, (pixels.shape[1], pixels.shape[0]), Slot("image", index))


def job(*images: InputImage, **fields) -> EditJob:
    fields.setdefault("prompt", "make it dusk")
    return EditJob(images=list(images), **fields)


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    with running(FakeGemini(png(RESULT))) as fake:
        yield fake


def gemini(fake: FakeGemini, **config) -> GeminiEditModel:
    config = {"model": UPSTREAM_MODEL, "api_base": f"{fake.base}/v1beta", "timeout": 5, **config}
    return GeminiEditModel("nano-banana", config=config)


async def edit(model: GeminiEditModel, edit_job: EditJob):
    try:
        return await model.edit(edit_job)
    finally:
        await model.aclose()


# -- the request built ---------------------------------------------------------------------

def test_request_puts_prompt_first_then_images_in_order():
    first, second = input_image(solid((200, 0, 0))), input_image(solid((0, 0, 200)), "JPEG", 1)
    method, path, kwargs = build_request(job(first, second, seed=7), UPSTREAM_MODEL)
    assert (method, path) == ("POST", "/models/gemini-2.5-flash-image:generateContent")
    parts = kwargs["json"]["contents"][0]["parts"]
    assert parts[0] == {"text": "make it dusk"}
    assert [p["inline_data"]["mime_type"] for p in parts[1:]] == ["image/png", "image/jpeg"]
    assert [base64.b64decode(p["inline_data"]["data"]) for p in parts[1:]] == \
        [first.read_bytes(), second.read_bytes()]
    config = kwargs["json"]["generationConfig"]
    assert config == {"responseModalities": ["TEXT", "IMAGE"], "seed": 7}


def test_image_gemini_cannot_read_is_sent_as_png():
    gif = input_image(gradient(), "GIF")
    _, _, kwargs = build_request(job(gif), UPSTREAM_MODEL)
    inline = kwargs["json"]["contents"][0]["parts"][1]["inline_data"]
    assert inline["mime_type"] == "image/png"
    assert decode(base64.b64decode(inline["data"])).shape == (48, 64, 3)


@pytest.mark.parametrize(("size", "ratio"), [((1024, 1024), "1:1"), ((1536, 1024), "3:2"),
                                             ((1024, 1536), "2:3"), ((1920, 1080), "16:9"),
                                             ((2560, 1080), "21:9"), ((1000, 1250), "4:5")])
def test_size_becomes_nearest_aspect_ratio(size, ratio):
    assert nearest_aspect_ratio(*size) == ratio
    _, _, kwargs = build_request(job(input_image(gradient()), size=size), UPSTREAM_MODEL)
    assert kwargs["json"]["generationConfig"]["imageConfig"] == {"aspectRatio": ratio}


def test_options_set_aspect_ratio_and_image_size():
    options = GeminiOptions(aspect_ratio="9:16", image_size="2K", temperature=0.4)
    _, _, kwargs = build_request(job(options=options), UPSTREAM_MODEL)
    config = kwargs["json"]["generationConfig"]
    assert config["imageConfig"] == {"aspectRatio": "9:16", "imageSize": "2K"}
    assert config["temperature"] == 0.4


def test_size_and_aspect_ratio_together_is_400_naming_aspect_ratio():
    with pytest.raises(InvalidRequestError) as caught:
        build_request(job(size=(1024, 1024), options=GeminiOptions(aspect_ratio="3:2")), UPSTREAM_MODEL)
    assert caught.value.param == "aspect_ratio"


def test_unknown_option_is_400_naming_it():
    with pytest.raises(InvalidRequestError) as caught:
        GeminiEditModel("nano-banana").parse_options({"guidance_scale": 3})
    assert caught.value.param == "guidance_scale"


def test_flags_default_and_follow_config():
    default = GeminiEditModel("nano-banana")
    assert (default.max_input_images, default.supports_mask, default.supports_generation,
            default.output_formats) == (3, False, True, ("png",))
    pro = GeminiEditModel("nano-banana-pro", config={"max_input_images": 14, "max_n": 2})
    assert pro.capabilities().max_input_images == 14 and pro.capabilities().max_n == 2


# -- the answer parsed ---------------------------------------------------------------------

def test_answer_reads_either_spelling_and_skips_thought_drafts():
    draft, final = png(solid((9, 9, 9))), png(RESULT)
    body = {"candidates": [{"content": {"parts": [
        {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(draft).decode()}, "thought": True},
        {"text": "A dusk scene."},
        {"inline_data": {"mime_type": "image/png", "data": base64.b64encode(final).decode()}},
    ]}, "finishReason": "STOP"}]}
    answer = parse_response(body)
    assert answer.image == final and answer.text == "A dusk scene."


@pytest.mark.anyio
@pytest.mark.parametrize("body", [
    {"candidates": [{"finishReason": "IMAGE_SAFETY"}]},
    {"candidates": [{"content": {"parts": [{"text": "I can't"}]}, "finishReason": "PROHIBITED_CONTENT"}]},
    {"promptFeedback": {"blockReason": "SAFETY"}},
])
async def test_block_reasons_are_content_policy_errors(fake, body):
    fake.replies = [Reply(body=body)]
    with pytest.raises(ContentPolicyError) as caught:
        await edit(gemini(fake), job(input_image(gradient())))
    assert caught.value.code == "content_policy_violation"
    assert "SAFETY" in caught.value.message or "PROHIBITED_CONTENT" in caught.value.message


@pytest.mark.anyio
async def test_text_only_answer_is_502_quoting_the_model(fake):
    fake.replies = [Reply(body={"candidates": [{"content": {"parts": [{"text": "Which dusk?"}]},
                                                "finishReason": "STOP"}]})]
    with pytest.raises(UpstreamError) as caught:
        await edit(gemini(fake), job(input_image(gradient())))
    assert caught.value.status == 502
    assert "without an image" in caught.value.message and "Which dusk?" in caught.value.message


# -- calls through the network -------------------------------------------------------------

@pytest.mark.anyio
async def test_call_carries_key_header_model_path_and_result(fake):
    result = await edit(gemini(fake), job(input_image(gradient()), quality="high"))
    (received,) = fake.received
    assert received.path == "/v1beta/models/gemini-2.5-flash-image:generateContent"
    assert received.headers["x-goog-api-key"] == KEY
    assert "authorization" not in received.headers and KEY not in received.path
    assert np.array_equal(decode(result.images[0].data), RESULT)
    assert result.images[0].content_type == "image/png"
    assert result.revised_prompt == fake.text
    assert result.usage == {"input_tokens": 300, "output_tokens": 1290, "total_tokens": 1590}
    assert result.extra["dropped_params"] == ["quality"]


@pytest.mark.anyio
async def test_n_images_are_n_concurrent_calls_with_successive_seeds(fake):
    fake.gate = 3
    result = await edit(gemini(fake), job(input_image(gradient()), n=3, seed=10))
    assert len(result.images) == 3 and len(fake.received) == 3
    assert fake.most_in_flight == 3
    assert sorted(r.body["generationConfig"]["seed"] for r in fake.received) == [10, 11, 12]
    assert result.usage["total_tokens"] == 3 * 1590


@pytest.mark.anyio
async def test_one_failed_call_of_n_fails_the_edit(fake):
    fake.replies = [Reply(status=500, body={"error": {"code": 500, "message": "internal"}})]
    with pytest.raises(UpstreamError):
        await edit(gemini(fake), job(input_image(gradient()), n=2))


@pytest.mark.anyio
async def test_transparent_background_is_400_before_any_call(fake):
    with pytest.raises(InvalidRequestError) as caught:
        await edit(gemini(fake), job(input_image(gradient()), background="transparent"))
    assert caught.value.param == "background" and fake.received == []


# -- through retouch's public API ----------------------------------------------------------

@pytest.fixture
def retouch_url(fake, make_settings, tmp_path, monkeypatch):
    models = tmp_path / "models.yaml"
    models.write_text(yaml.safe_dump({"models": [{
        "id": "nano-banana", "provider": "gemini", "model": UPSTREAM_MODEL,
        "api_base": f"{fake.base}/v1beta", "timeout": 0.3}]}))
    with running_retouch(make_settings(models_file=models)) as url:
        yield url


def post_edit(url: str, **data) -> httpx.Response:
    data = {"model": "nano-banana", "prompt": "make it dusk", **data}
    return httpx.post(f"{url}/v1/images/edits", data=data, timeout=10,
                      files=[("image", ("a.png", png(gradient()), "image/png"))])


def test_openai_client_edit_returns_the_fakes_pixels(fake, retouch_url):
    client = openai.OpenAI(base_url=f"{retouch_url}/v1", api_key="unused", max_retries=0)
    first, second = png(gradient()), png(solid((0, 0, 200)))
    result = client.images.edit(model="nano-banana", prompt="make it dusk", response_format="b64_json",
                                image=[("a.png", first, "image/png"), ("b.png", second, "image/png")])
    assert np.array_equal(decode(base64.b64decode(result.data[0].b64_json)), RESULT)
    assert result.data[0].revised_prompt == fake.text
    assert fake.received[0].images == [first, second]


def test_openai_client_generation_sends_only_the_prompt(fake, retouch_url):
    client = openai.OpenAI(base_url=f"{retouch_url}/v1", api_key="unused", max_retries=0)
    result = client.images.generate(model="nano-banana", prompt="a lighthouse at dusk",
                                    size="1536x1024", response_format="b64_json")
    assert np.array_equal(decode(base64.b64decode(result.data[0].b64_json)), RESULT)
    (received,) = fake.received
    assert received.parts == [{"text": "a lighthouse at dusk"}]
    assert received.body["generationConfig"]["imageConfig"] == {"aspectRatio": "3:2"}


def test_key_without_permission_is_502_naming_the_variable_never_the_key(fake, retouch_url, caplog):
    # Google's 400 API_KEY_INVALID (the usual answer) is in the contract suite; this is the 403.
    caplog.set_level(logging.DEBUG)
    fake.replies = [Reply(status=403, body={"error": {"code": 403, "message": f"Permission denied for {KEY}",
                                                      "status": "PERMISSION_DENIED"}})]
    response = post_edit(retouch_url)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_auth_failed"
    assert "GEMINI_API_KEY" in response.json()["error"]["message"]
    assert KEY not in response.text and KEY not in caplog.text


def test_content_block_is_400_content_policy_violation(fake, retouch_url):
    fake.replies = [Reply(body={"candidates": [{"finishReason": "IMAGE_SAFETY"}]})]
    response = post_edit(retouch_url)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "content_policy_violation"
    assert "IMAGE_SAFETY" in response.json()["error"]["message"]


def test_four_images_exceed_the_default_of_three(fake, retouch_url):
    response = httpx.post(f"{retouch_url}/v1/images/edits", timeout=10,
                          data={"model": "nano-banana", "prompt": "merge"},
                          files=[("image[]", (f"{i}.png", png(gradient()), "image/png")) for i in range(4)])
    assert response.status_code == 400 and response.json()["error"]["param"] == "image"
    assert fake.received == []
