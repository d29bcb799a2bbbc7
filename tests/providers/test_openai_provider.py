"""The ``openai`` backend: request translation, and retouch in front of a fake OpenAI."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import numpy as np
import openai
import pytest
import yaml

from retouch.errors import InvalidRequestError
from retouch.inputs import InputImage, Slot
from retouch.providers.base import EditJob
from retouch.providers.openai import (
    DALL_E_2,
    GPT_IMAGE,
    OpenAIEditModel,
    OpenAIOptions,
    build_edit_request,
    build_generation_request,
    parse_images_response,
)
from tests.images import decode, encode, gradient, png, solid
from tests.providers.fake_openai import FakeOpenAI, error_reply, images_reply, running_fake, url_reply
from tests.servers import running_retouch

KEY = "sk-fake-upstream-key"


def input_image(pixels: np.ndarray, fmt: str = "PNG", index: int = 0, param: str = "image") -> InputImage:
    data = encode(pixels, fmt)
    return InputImage(io.BytesIO(data), fmt, (pixels.shape[1], pixels.shape[0]), Slot(param, index))


def job(**fields) -> EditJob:
    fields.setdefault("prompt", "make it blue")
    fields.setdefault("images", [input_image(gradient())])
    return EditJob(**fields)


# -- translation ----------------------------------------------------------------------


def test_gpt_image_edit_sends_images_in_order_and_no_response_format():
    first, second, mask = input_image(solid((255, 0, 0))), input_image(solid((0, 0, 255)), index=1), \
        input_image(solid((0, 0, 0, 0)), param="mask")
    request = build_edit_request(
        job(images=[first, second], mask=mask, n=3, size=(1536, 1024), quality="high",
            background="transparent", output_format="webp", seed=42),
        "gpt-image-1", GPT_IMAGE, {})
    data, files = request.kwargs["data"], request.kwargs["files"]
    assert (request.method, request.path) == ("POST", "/images/edits")
    assert data == {"model": "gpt-image-1", "prompt": "make it blue", "n": "3", "size": "1536x1024",
                    "quality": "high", "background": "transparent", "output_format": "webp"}
    assert [name for name, _ in files] == ["image[]", "image[]", "mask"]
    assert [part[1] for _, part in files] == [first.read_bytes(), second.read_bytes(), mask.read_bytes()]
    assert files[0][1][2] == "image/png"
    assert request.dropped == ["seed"]  # OpenAI has no seed


def test_fields_job_does_not_carry_yet_are_forwarded_when_present():
    edit = job(output_format="jpeg")
    edit.output_compression, edit.input_fidelity, edit.user = 80, "high", "user-7"
    data = build_edit_request(edit, "gpt-image-1", GPT_IMAGE, {}).kwargs["data"]
    assert (data["output_compression"], data["input_fidelity"], data["user"]) == ("80", "high", "user-7")


def test_dall_e_2_edit_uses_image_part_and_asks_for_b64_json():
    gif = input_image(gradient(32, 32), "GIF")
    request = build_edit_request(job(images=[gif], quality="high", output_format="jpeg",
                                     background="opaque"), "dall-e-2", DALL_E_2, {})
    data, files = request.kwargs["data"], request.kwargs["files"]
    assert data == {"model": "dall-e-2", "prompt": "make it blue", "n": "1", "response_format": "b64_json"}
    assert files[0][0] == "image" and files[0][1][2] == "image/png"
    assert files[0][1][1].startswith(b"\x89PNG")  # DALL·E 2 reads PNG only: the GIF was converted
    assert sorted(request.dropped) == ["background", "quality"]


def test_dall_e_2_refuses_a_transparent_background():
    with pytest.raises(InvalidRequestError) as caught:
        build_edit_request(job(background="transparent"), "dall-e-2", DALL_E_2, {})
    assert caught.value.param == "background"


def test_jpeg_inputs_go_as_they_are():
    photo = input_image(gradient(), "JPEG")
    _, (filename, data, content_type) = build_edit_request(job(images=[photo]), "gpt-image-1", GPT_IMAGE,
                                                           {}).kwargs["files"][0]
    assert (filename, content_type, data) == ("image_0.jpg", "image/jpeg", photo.read_bytes())


def test_generation_is_json_with_moderation():
    request = build_generation_request(job(images=[], n=2, size=(1024, 1024), quality="standard"),
                                       "gpt-image-1", GPT_IMAGE, {"moderation": "low"})
    assert (request.method, request.path) == ("POST", "/images/generations")
    assert request.kwargs["json"] == {"model": "gpt-image-1", "prompt": "make it blue", "n": 2,
                                      "size": "1024x1024", "output_format": "png", "moderation": "low"}
    assert request.dropped == ["quality"]  # 'standard' is a DALL·E 3 value


def test_answer_parsed_with_usage_and_revised_prompt():
    image = png(gradient())
    body = {"created": 1, "data": [{"b64_json": base64.b64encode(image).decode(), "revised_prompt": "blue"}],
            "usage": {"input_tokens": 50, "output_tokens": 4160, "total_tokens": 4210,
                      "input_tokens_details": {"image_tokens": 40, "text_tokens": 10}}}
    answer = parse_images_response(body, "openai")
    assert base64.b64decode(answer.images[0].b64_json) == image
    assert answer.revised_prompt == "blue"
    assert answer.usage == {"input_tokens": 50, "output_tokens": 4160, "total_tokens": 4210}


def test_capabilities_follow_the_model_family_and_config():
    gpt = OpenAIEditModel("gpt-image-1")
    flags = (gpt.max_input_images, gpt.supports_mask, gpt.supports_generation, gpt.max_n)
    assert flags == (16, True, True, 10)
    assert gpt.capabilities().output_formats == ["png", "jpeg", "webp"]
    assert OpenAIEditModel("dall-e-2").max_input_images == 1
    narrowed = OpenAIEditModel("mini", config={"model": "gpt-image-1-mini", "max_input_images": 4,
                                               "max_n": 2})
    assert (narrowed.family, narrowed.max_input_images, narrowed.max_n) == (GPT_IMAGE, 4, 2)


def test_missing_key_says_how_to_fix_it(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    availability = OpenAIEditModel("gpt-image-1").availability()
    assert not availability.available and "OPENAI_API_KEY" in availability.fix


# -- retouch in front of a fake OpenAI -------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with running_fake(FakeOpenAI(key=KEY)) as fake:
        yield fake


@pytest.fixture
def client(fake, make_settings, tmp_path, monkeypatch) -> Iterator[openai.OpenAI]:
    """The official client, talking to retouch, whose OpenAI models call the fake."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    base = f"{fake.url}/v1"
    models = [
        {"id": "gpt-image-1", "provider": "openai", "api_base": base, "timeout": 5},
        {"id": "dall-e-2", "provider": "openai", "api_base": base, "timeout": 5},
    ]
    models_file = tmp_path / "models.yaml"
    models_file.write_text(yaml.safe_dump({"models": models}))
    with running_retouch(make_settings(models_file=models_file)) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def upload(pixels: np.ndarray, name: str) -> tuple[str, bytes, str]:
    return name, png(pixels), "image/png"


def b64_pixels(result, index: int = 0) -> np.ndarray:
    return decode(base64.b64decode(result.data[index].b64_json))


def test_edit_through_retouch_returns_the_upstream_pixels(client, fake):
    outputs = gradient(40, 30), gradient(40, 30)[::-1]
    fake.reply = images_reply(png(outputs[0]), png(outputs[1]), revised_prompt="a blue scene",
                              usage={"input_tokens": 10, "output_tokens": 20, "total_tokens": 30})
    red, blue = solid((220, 40, 40)), solid((40, 40, 220))
    result = client.images.edit(
        model="gpt-image-1", image=[upload(red, "r.png"), upload(blue, "b.png")],
        mask=upload(solid((0, 0, 0, 0)), "m.png"), prompt="paint it like the second", n=2,
        size="1024x1536", quality="high", response_format="b64_json")
    assert [b64_pixels(result, i).tolist() for i in (0, 1)] == [o.tolist() for o in outputs]
    assert result.data[0].revised_prompt == "a blue scene"
    assert (result.usage.input_tokens, result.usage.total_tokens) == (10, 30)
    sent = fake.received[0]
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert [decode(p.data)[0, 0].tolist() for p in sent.files if p.name == "image[]"] == [
        [220, 40, 40], [40, 40, 220]]
    assert [p.name for p in sent.files] == ["image[]", "image[]", "mask"]
    assert "response_format" not in sent.field_names()
    assert (sent.value("model"), sent.value("n"), sent.value("size"), sent.value("quality")) == (
        "gpt-image-1", "2", "1024x1536", "high")


def test_webp_answer_is_passed_on_unchanged(client, fake):
    webp = encode(gradient(), "WEBP", quality=90)
    fake.reply = images_reply(webp)
    result = client.images.edit(model="gpt-image-1", image=upload(gradient(), "a.png"), prompt="sharpen",
                                output_format="webp", response_format="b64_json")
    assert base64.b64decode(result.data[0].b64_json) == webp
    assert fake.received[0].value("output_format") == "webp"


def test_generation_sends_json_and_options(client, fake):
    fake.reply = images_reply(png(solid((9, 99, 199))))
    result = client.images.generate(model="gpt-image-1", prompt="a teal square", size="1024x1024",
                                    response_format="b64_json", extra_body={"moderation": "low"})
    assert b64_pixels(result)[0, 0].tolist() == [9, 99, 199]
    assert fake.received[0].json == {"model": "gpt-image-1", "prompt": "a teal square", "n": 1,
                                     "size": "1024x1024", "output_format": "png", "moderation": "low"}


def test_other_bad_requests_stay_plain_400s(client, fake):
    fake.reply = error_reply(400, "Invalid size '999x999'.", code="invalid_value")
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.edit(model="gpt-image-1", image=upload(gradient(), "a.png"), prompt="x", size="999x999")
    assert caught.value.code == "upstream_rejected" and "999x999" in caught.value.message


def test_dall_e_2_url_results_are_downloaded(client, fake):
    fake.files["out.png"] = png(solid((1, 2, 3)))
    fake.reply = url_reply(f"{fake.url}/files/out.png")
    result = client.images.edit(model="dall-e-2", image=upload(gradient(32, 32), "a.png"), prompt="x",
                                response_format="b64_json")
    assert b64_pixels(result)[0, 0].tolist() == [1, 2, 3]
    assert fake.received[0].value("response_format") == "b64_json"
    assert fake.file_requests == ["out.png"]


def test_expired_result_url_is_502(client, fake):
    fake.reply = url_reply(f"{fake.url}/files/gone.png")
    with pytest.raises(openai.InternalServerError) as caught:
        client.images.edit(model="dall-e-2", image=upload(gradient(32, 32), "a.png"), prompt="x")
    assert caught.value.status_code == 502


def test_result_url_on_a_foreign_host_is_never_fetched(client, fake):
    fake.files["out.png"] = png()
    foreign = fake.url.replace("127.0.0.1", "localhost")  # the same server under another name
    fake.reply = url_reply(f"{foreign}/files/out.png")
    with pytest.raises(openai.InternalServerError) as caught:
        client.images.edit(model="dall-e-2", image=upload(gradient(32, 32), "a.png"), prompt="x")
    assert caught.value.status_code == 502 and "unexpected host" in caught.value.message
    assert fake.file_requests == []


def test_missing_key_is_503_with_the_fix(client, fake, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(openai.APIStatusError) as caught:
        client.images.edit(model="gpt-image-1", image=upload(gradient(), "a.png"), prompt="x")
    assert caught.value.status_code == 503 and "OPENAI_API_KEY" in caught.value.message
    assert fake.submissions == 0


@pytest.mark.anyio
async def test_dropped_params_are_listed_and_not_sent(fake, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    model = OpenAIEditModel("gpt-image-1", config={"api_base": f"{fake.url}/v1"})
    try:
        result = await model.edit(job(seed=7, options=OpenAIOptions(moderation="low")))
    finally:
        await model.aclose()
    assert sorted(result.extra["dropped_params"]) == ["moderation", "seed"]
    assert not {"seed", "moderation"} & fake.received[0].field_names()
    assert result.images[0].content_type == "image/png"


def test_b64_that_is_not_an_image_is_refused():
    from retouch.errors import UpstreamError

    body = {"created": 1, "data": [{"b64_json": base64.b64encode(b"not an image at all").decode()}]}
    with pytest.raises(UpstreamError, match="not a PNG, JPEG or WebP"):
        parse_images_response(body, "openai")
