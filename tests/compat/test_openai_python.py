"""The official ``openai`` Python client against a real retouch server."""

from __future__ import annotations

import base64

import numpy as np
import openai
import pytest

from tests.images import decode, gradient, png, solid
from tests.servers import running_retouch


@pytest.fixture
def keyed(make_settings):
    with running_retouch(make_settings(api_keys="sk-test")) as base:
        yield openai.OpenAI(base_url=f"{base}/v1", api_key="sk-test", max_retries=0)


def _file(pixels: np.ndarray, name: str) -> tuple[str, bytes, str]:
    return (name, png(pixels), "image/png")


def test_edit_one_file(keyed):
    result = keyed.images.edit(model="retouch/basic", image=_file(gradient(), "a.png"),
                               prompt="flip horizontally", response_format="b64_json")
    out = decode(base64.b64decode(result.data[0].b64_json))
    assert np.array_equal(out, gradient()[:, ::-1])
    assert result.data[0].revised_prompt == "flip horizontal"


def test_edit_list_of_files_restyles_first(keyed):
    red, blue = solid((220, 40, 40)), solid((40, 40, 220))
    result = keyed.images.edit(model="retouch/basic", image=[_file(red, "r.png"), _file(blue, "b.png")],
                               prompt="Replace the first image have the same image style as the second image.",
                               response_format="b64_json")
    out = decode(base64.b64decode(result.data[0].b64_json)).astype(int)
    assert out[..., 2].mean() > 150 and out[..., 0].mean() < 100


def test_edit_with_extra_body_image_urls(keyed):
    blue = "data:image/png;base64," + base64.b64encode(png(solid((40, 40, 220)))).decode()
    result = keyed.images.edit(model="retouch/basic", image=_file(solid((220, 40, 40)), "r.png"),
                               prompt="same style as the second image",
                               extra_body={"image_urls": [blue], "output_format": "b64_json"})
    out = decode(base64.b64decode(result.data[0].b64_json)).astype(int)
    assert out[..., 2].mean() > out[..., 0].mean()


def test_edit_url_delivery_and_n(keyed):
    import httpx

    result = keyed.images.edit(model="basic", image=_file(gradient(), "a.png"), prompt="grayscale", n=2)
    assert len(result.data) == 2
    fetched = httpx.get(result.data[0].url)
    assert fetched.status_code == 200
    out = decode(fetched.content)
    assert np.array_equal(out[..., 0], out[..., 2])


def test_edit_output_format_webp(keyed):
    result = keyed.images.edit(model="retouch/basic", image=_file(gradient(), "a.png"), prompt="rotate 90",
                               output_format="webp", response_format="b64_json")
    raw = base64.b64decode(result.data[0].b64_json)
    assert raw[8:12] == b"WEBP"
    assert result.output_format == "webp"


def test_generate(keyed):
    result = keyed.images.generate(model="retouch/basic", prompt="a 64x64 solid red image",
                                   response_format="b64_json")
    out = decode(base64.b64decode(result.data[0].b64_json))
    assert out.shape == (64, 64, 3) and tuple(out[0, 0]) == (255, 0, 0)


def test_stream_events(keyed):
    stream = keyed.images.edit(model="retouch/basic", image=_file(gradient(), "a.png"), prompt="grayscale",
                               stream=True)
    events = list(stream)
    assert [e.type for e in events] == ["image_edit.completed"]
    assert decode(base64.b64decode(events[0].b64_json)).shape[:2] == (48, 64)


def test_unknown_model_is_not_found(keyed):
    with pytest.raises(openai.NotFoundError) as caught:
        keyed.images.edit(model="nope", image=_file(gradient(), "a.png"), prompt="grayscale")
    assert caught.value.body["param"] == "model"


def test_bad_key_is_authentication_error(make_settings):
    with running_retouch(make_settings(api_keys="sk-test")) as base:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="sk-wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            client.images.edit(model="retouch/basic", image=_file(gradient(), "a.png"), prompt="grayscale")


def test_bad_request_is_bad_request_error(keyed):
    with pytest.raises(openai.BadRequestError) as caught:
        keyed.images.edit(model="retouch/basic", image=_file(gradient(), "a.png"), prompt="grayscale", n=11)
    assert caught.value.body["param"] == "n"


def test_unreadable_instruction_is_unprocessable(keyed):
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        keyed.images.edit(model="retouch/basic", image=_file(gradient(), "a.png"), prompt="add a dragon")
    assert caught.value.body["code"] == "unsupported_instruction"


def test_models_list_and_retrieve(keyed):
    ids = [m.id for m in keyed.models.list()]
    assert "retouch/basic" in ids
    assert keyed.models.retrieve("retouch/basic").id == "retouch/basic"


def test_upload_from_real_file_object(keyed, tmp_path):
    path = tmp_path / "photo.png"
    path.write_bytes(png(gradient()))
    with path.open("rb") as handle:
        result = keyed.images.edit(model="retouch/basic", image=handle, prompt="flip vertically",
                                   response_format="b64_json")
    out = decode(base64.b64decode(result.data[0].b64_json))
    assert np.array_equal(out, gradient()[::-1])
