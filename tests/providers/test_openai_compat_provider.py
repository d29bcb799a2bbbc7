"""The ``openai_compatible`` backend: Siraya's JSON style, the OpenAI multipart style,
and another retouch as the upstream."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import numpy as np
import openai
import pytest
import yaml

from retouch.inputs import InputImage, Slot
from retouch.providers.base import EditJob
from retouch.providers.openai_compat import (
    OpenAICompatibleEditModel,
    OpenAICompatibleOptions,
    build_siraya_request,
)
from tests.images import decode, encode, gradient, png, solid
from tests.providers.fake_openai import FakeOpenAI, images_reply, running_fake, url_reply
from tests.servers import running_retouch

KEY = "sk-siraya-fake-key"
PROVIDER = "retouch.providers.openai_compat:OpenAICompatibleEditModel"


def input_image(pixels: np.ndarray, fmt: str = "PNG", index: int = 0) -> InputImage:
    data = encode(pixels, fmt)
    return InputImage(io.BytesIO(data), fmt, (pixels.shape[1], pixels.shape[0]), Slot("image", index))


def job(**fields) -> EditJob:
    fields.setdefault("prompt", "make it blue")
    fields.setdefault("images", [input_image(gradient())])
    return EditJob(**fields)


def data_url_bytes(url: str) -> bytes:
    header, _, payload = url.partition(",")
    assert header.endswith(";base64")
    return base64.b64decode(payload)


def upload(pixels: np.ndarray, name: str) -> tuple[str, bytes, str]:
    return name, png(pixels), "image/png"


# -- translation and configuration ----------------------------------------------------


def test_siraya_edit_is_json_with_data_urls_in_order():
    red, blue = input_image(solid((255, 0, 0))), input_image(solid((0, 0, 255)), "JPEG", 1)
    request = build_siraya_request(
        job(images=[red, blue], n=2, size=(1024, 768), seed=5, quality="high", output_format="webp"),
        "jia-lab/dreamomni2-image-to-image", {"negative_prompt": "blur"})
    body = request.kwargs["json"]
    assert (request.method, request.path) == ("POST", "/images/edits")
    assert [url.split(";")[0] for url in body.pop("image_urls")] == ["data:image/png", "data:image/jpeg"]
    assert body == {"model": "jia-lab/dreamomni2-image-to-image", "prompt": "make it blue", "n": 2,
                    "size": "1024x768", "seed": 5, "negative_prompt": "blur", "output_format": "b64_json"}
    assert request.dropped == ["quality"]


def test_siraya_generation_has_no_images():
    request = build_siraya_request(job(images=[]), "flux", {})
    assert request.path == "/images/generations"
    assert request.kwargs["json"] == {"model": "flux", "prompt": "make it blue", "n": 1,
                                      "output_format": "b64_json"}


def test_style_sets_capabilities_and_auth_form(monkeypatch):
    monkeypatch.setenv("UP_KEY", "k1")
    siraya = OpenAICompatibleEditModel("s", config={"api_base": "https://x/v1", "style": "siraya",
                                                    "api_key_env": "UP_KEY"})
    plain = OpenAICompatibleEditModel("o", config={"api_base": "https://x/v1", "api_key_env": "UP_KEY"})
    bearer_siraya = OpenAICompatibleEditModel("b", config={
        "api_base": "https://x/v1", "style": "siraya", "api_key_env": "UP_KEY", "auth_header_style": "bearer"})
    assert (siraya.supports_mask, siraya.max_input_images, siraya.auth_headers()) == (
        False, 10, {"Authorization": "k1"})
    assert (plain.supports_mask, plain.max_input_images, plain.auth_headers()) == (
        True, 16, {"Authorization": "Bearer k1"})
    assert bearer_siraya.auth_headers() == {"Authorization": "Bearer k1"}


def test_keyless_upstream_gets_no_authorization_header():
    model = OpenAICompatibleEditModel("local", config={"api_base": "http://127.0.0.1:9/v1"})
    assert model.availability().available
    assert model.auth_headers() == {}


def test_missing_api_base_is_unavailable_with_the_fix():
    availability = OpenAICompatibleEditModel("nowhere").availability()
    assert not availability.available
    assert "api_base" in availability.reason and "api_base" in availability.fix


def test_declared_key_variable_must_be_set(monkeypatch):
    monkeypatch.delenv("UPSTREAM_KEY", raising=False)
    model = OpenAICompatibleEditModel("m", config={"api_base": "https://x/v1", "api_key_env": "UPSTREAM_KEY"})
    availability = model.availability()
    assert not availability.available and "UPSTREAM_KEY" in availability.fix


@pytest.mark.anyio
async def test_auth_header_style_overrides_the_preset(monkeypatch):
    monkeypatch.setenv("UP_KEY", KEY)
    with running_fake(FakeOpenAI(key=KEY, auth="bearer", edits="json")) as fake:
        fake.reply = images_reply(png(solid((5, 6, 7))), siraya=True)
        model = OpenAICompatibleEditModel("m", config={
            "api_base": f"{fake.url}/v1", "style": "siraya", "api_key_env": "UP_KEY",
            "auth_header_style": "bearer"})
        try:
            result = await model.edit(job())
        finally:
            await model.aclose()
    assert fake.received[0].headers["authorization"] == f"Bearer {KEY}"
    assert decode(result.images[0].encoded())[0, 0].tolist() == [5, 6, 7]


# -- retouch in front of a fake Siraya -------------------------------------------------


@pytest.fixture
def siraya() -> Iterator[FakeOpenAI]:
    with running_fake(FakeOpenAI(key=KEY, auth="plain", edits="json")) as fake:
        yield fake


def serve(models: list[dict], make_settings, tmp_path, name: str = "front"):
    models_file = tmp_path / f"{name}-models.yaml"
    models_file.write_text(yaml.safe_dump({"models": models}))
    return running_retouch(make_settings(models_file=models_file, data_dir=tmp_path / name))


@pytest.fixture
def client(siraya, make_settings, tmp_path, monkeypatch) -> Iterator[openai.OpenAI]:
    monkeypatch.setenv("SIRAYA_API_KEY", KEY)
    models = [{"id": "dreamomni2", "provider": "openai_compatible", "style": "siraya",
               "model": "jia-lab/dreamomni2-image-to-image", "api_base": f"{siraya.url}/v1",
               "api_key_env": "SIRAYA_API_KEY", "timeout": 5}]
    with serve(models, make_settings, tmp_path) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def test_siraya_edit_through_retouch(client, siraya):
    siraya.reply = images_reply(png(gradient(20, 10)), revised_prompt="restyled as the second image",
                                siraya=True)
    red, blue = solid((220, 40, 40)), solid((40, 40, 220))
    result = client.images.edit(model="dreamomni2", image=[upload(red, "r.png"), upload(blue, "b.png")],
                                prompt="same style as the second image", response_format="b64_json")
    assert np.array_equal(decode(base64.b64decode(result.data[0].b64_json)), gradient(20, 10))
    assert result.data[0].revised_prompt == "restyled as the second image"
    sent = siraya.received[0]
    assert sent.headers["authorization"] == KEY  # the bare key, no "Bearer"
    body = sent.json
    firsts = [decode(data_url_bytes(url))[0, 0].tolist() for url in body["image_urls"]]
    assert firsts == [[220, 40, 40], [40, 40, 220]]
    assert (body["model"], body["n"], body["output_format"]) == (
        "jia-lab/dreamomni2-image-to-image", 1, "b64_json")


def test_siraya_encoding_is_transcoded_by_retouch(client, siraya):
    siraya.reply = images_reply(png(solid((10, 200, 30))), siraya=True)
    result = client.images.edit(model="dreamomni2", image=upload(gradient(), "a.png"), prompt="x",
                                output_format="jpeg", response_format="b64_json")
    out = base64.b64decode(result.data[0].b64_json)
    assert out.startswith(b"\xff\xd8\xff")
    assert np.abs(decode(out)[0, 0].astype(int) - [10, 200, 30]).max() < 8
    assert siraya.received[0].json["output_format"] == "b64_json"


def test_siraya_url_result_downloaded_from_its_host(client, siraya):
    siraya.files["generated.png"] = png(solid((1, 2, 3)))
    siraya.reply = url_reply(f"{siraya.url}/files/generated.png")
    result = client.images.edit(model="dreamomni2", image=upload(gradient(), "a.png"), prompt="x",
                                response_format="b64_json")
    assert decode(base64.b64decode(result.data[0].b64_json))[0, 0].tolist() == [1, 2, 3]


def test_siraya_result_on_a_foreign_host_is_never_fetched(client, siraya):
    siraya.files["generated.png"] = png()
    siraya.reply = url_reply(siraya.url.replace("127.0.0.1", "localhost") + "/files/generated.png")
    with pytest.raises(openai.InternalServerError) as caught:
        client.images.edit(model="dreamomni2", image=upload(gradient(), "a.png"), prompt="x")
    assert caught.value.status_code == 502
    assert siraya.file_requests == []


def test_siraya_generation_through_retouch(client, siraya):
    siraya.reply = images_reply(png(solid((0, 128, 255))), siraya=True)
    result = client.images.generate(model="dreamomni2", prompt="a sky", response_format="b64_json")
    assert decode(base64.b64decode(result.data[0].b64_json))[0, 0].tolist() == [0, 128, 255]
    assert siraya.received[0].path == "/v1/images/generations"
    assert "image_urls" not in siraya.received[0].json


def test_siraya_takes_no_mask(client, siraya):
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.edit(model="dreamomni2", image=upload(gradient(), "a.png"),
                           mask=upload(solid((0, 0, 0, 0), 64, 48), "m.png"), prompt="x")
    assert caught.value.body["param"] == "mask"
    assert siraya.submissions == 0


# -- the openai style against a multipart fake -----------------------------------------


def test_openai_style_sends_multipart_with_b64_json(make_settings, tmp_path, monkeypatch):
    monkeypatch.setenv("UPSTREAM_KEY", KEY)
    with running_fake(FakeOpenAI(key=KEY)) as fake:
        fake.reply = images_reply(png(solid((70, 80, 90))), revised_prompt="teal")
        models = [{"id": "qwen-edit", "provider": "openai_compatible", "model": "Qwen-Image-Edit-2511",
                   "api_base": f"{fake.url}/v1", "api_key_env": "UPSTREAM_KEY", "timeout": 5}]
        with serve(models, make_settings, tmp_path) as url:
            client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
            result = client.images.edit(
                model="qwen-edit",
                image=[upload(solid((1, 1, 1)), "a.png"), upload(solid((2, 2, 2)), "b.png")],
                prompt="x", size="512x512", response_format="b64_json",
                extra_body={"seed": 777, "num_inference_steps": 20, "guidance_scale": 1.5})
    assert decode(base64.b64decode(result.data[0].b64_json))[0, 0].tolist() == [70, 80, 90]
    assert result.data[0].revised_prompt == "teal"
    sent = fake.received[0]
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert [decode(p.data)[0, 0].tolist() for p in sent.files] == [[1, 1, 1], [2, 2, 2]]
    assert {p.name for p in sent.files} == {"image[]"}
    fields = dict(sent.fields)
    assert fields == {"model": "Qwen-Image-Edit-2511", "prompt": "x", "n": "1", "size": "512x512",
                      "output_format": "png", "seed": "777", "num_inference_steps": "20",
                      "guidance_scale": "1.5", "response_format": "b64_json"}


def test_options_are_checked_by_name():
    model = OpenAICompatibleEditModel("m", config={"api_base": "https://x/v1"})
    assert model.parse_options({"negative_prompt": "fog"}) == OpenAICompatibleOptions(negative_prompt="fog")
    with pytest.raises(Exception, match="moderation"):
        model.parse_options({"moderation": "low"})


# -- retouch as the upstream ------------------------------------------------------------


@pytest.mark.parametrize("style", ["openai", "siraya"])
def test_grayscale_through_two_retouch_servers(style, make_settings, tmp_path, monkeypatch):
    with serve([], make_settings, tmp_path, "upstream") as upstream:
        models = [{"id": "relay", "provider": "openai_compatible", "style": style,
                   "model": "retouch/basic", "api_base": f"{upstream}/v1", "timeout": 10}]
        with serve(models, make_settings, tmp_path) as front:
            client = openai.OpenAI(base_url=f"{front}/v1", api_key="unused", max_retries=0)
            result = client.images.edit(model="relay", image=upload(gradient(), "a.png"),
                                        prompt="grayscale", response_format="b64_json")
    out = decode(base64.b64decode(result.data[0].b64_json)).astype(int)
    assert out.shape == (48, 64, 3)
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])
    assert out[..., 0].std() > 20  # gray, not blank: the gradient's structure survives
    assert "gray" in result.data[0].revised_prompt or "grey" in result.data[0].revised_prompt
