"""Every request spelling real clients send, through a real HTTP server."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from tests.images import decode, encode, gradient, png, solid


def _b64(item: dict) -> np.ndarray:
    return decode(base64.b64decode(item["b64_json"]))


def _data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def test_multipart_single_image_field(client):
    response = client.post(
        "/v1/images/edits",
        data={"prompt": "flip horizontally", "response_format": "b64_json", "model": "retouch/basic"},
        files={"image": ("a.png", png(), "image/png")},
    )
    assert response.status_code == 200, response.text
    out = _b64(response.json()["data"][0])
    assert np.array_equal(out, gradient()[:, ::-1])


def test_multipart_image_list_first_is_edited_in_order(client):
    red, blue = solid((250, 10, 10)), solid((10, 10, 250))
    files = [("image[]", ("r.png", png(red), "image/png")), ("image[]", ("b.png", png(blue), "image/png"))]
    response = client.post(
        "/v1/images/edits",
        data={"prompt": "give the first image the same colours as the second image",
              "response_format": "b64_json"},
        files=files,
    )
    assert response.status_code == 200, response.text
    out = _b64(response.json()["data"][0]).astype(int)
    assert out[..., 2].mean() > out[..., 0].mean(), "first (red) image should turn blue"


def test_multipart_files_come_before_urls(client):
    red, blue = solid((250, 10, 10)), solid((10, 10, 250))
    response = client.post(
        "/v1/images/edits",
        data={"prompt": "same style as the second image", "response_format": "b64_json",
              "image_urls[]": [_data_url(png(blue))]},
        files=[("image", ("r.png", png(red), "image/png"))],
    )
    assert response.status_code == 200, response.text
    out = _b64(response.json()["data"][0]).astype(int)
    assert out[..., 2].mean() > out[..., 0].mean()


def test_multipart_plain_image_urls_field(client):
    response = client.post(
        "/v1/images/edits",
        data={"prompt": "grayscale", "response_format": "b64_json", "image_urls": _data_url(png())},
    )
    assert response.status_code == 200, response.text
    out = _b64(response.json()["data"][0])
    assert out.shape[:2] == (48, 64)
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])


def test_json_siraya_form_with_output_format_delivery(client):
    body = {"model": "retouch/basic", "prompt": "rotate 90 degrees",
            "image_urls": [_data_url(png())], "n": 1, "output_format": "b64_json"}
    response = client.post("/v1/images/edits", json=body)
    assert response.status_code == 200, response.text
    payload = response.json()
    assert set(payload["data"][0]) == {"url", "b64_json", "revised_prompt"}
    assert payload["data"][0]["url"] == ""
    assert payload["data"][0]["revised_prompt"] == "rotate 90° clockwise"
    assert _b64(payload["data"][0]).shape[:2] == (64, 48)


def test_json_openai_form_images_and_encoding(client):
    body = {"prompt": "flip vertically", "images": [{"image_url": _data_url(png())}],
            "response_format": "b64_json", "output_format": "webp"}
    response = client.post("/v1/images/edits", json=body)
    assert response.status_code == 200, response.text
    payload = response.json()
    raw = base64.b64decode(payload["data"][0]["b64_json"])
    assert raw[:4] == b"RIFF" and raw[8:12] == b"WEBP"
    assert payload["output_format"] == "webp"


def test_url_delivery_is_absolute_and_served(client):
    response = client.post("/v1/images/edits", json={"prompt": "grayscale", "image_urls": [_data_url(png())]})
    assert response.status_code == 200, response.text
    item = response.json()["data"][0]
    assert item["b64_json"] == ""
    assert item["url"].startswith(str(client.base_url))
    name = item["url"].rsplit("/", 1)[1]
    assert len(name.split(".")[0]) >= 32
    image = client.get(item["url"])
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert "immutable" in image.headers["cache-control"]
    pixels = decode(image.content)
    assert pixels.shape[:2] == (48, 64)


def test_public_url_setting_builds_urls(make_settings):
    from tests.servers import running_retouch
    import httpx

    settings = make_settings(public_url="https://img.example.com/")
    with running_retouch(settings) as base, httpx.Client(base_url=base) as http:
        response = http.post("/v1/images/edits", json={"prompt": "grayscale", "image_urls": [_data_url(png())]})
        url = response.json()["data"][0]["url"]
        assert url.startswith("https://img.example.com/files/")
        assert http.get("/files/" + url.rsplit("/", 1)[1]).status_code == 200


def test_n_returns_n_images(client):
    response = client.post("/v1/images/edits", data={"prompt": "grayscale", "n": "3", "response_format": "b64_json"},
                           files={"image": ("a.png", png(), "image/png")})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert len(data) == 3
    assert data[0]["b64_json"] == data[2]["b64_json"]


def test_size_fits_inside_keeping_aspect(client):
    response = client.post("/v1/images/edits", json={
        "prompt": "flip", "image_urls": [_data_url(png())], "size": "32x32", "response_format": "b64_json"})
    assert response.status_code == 200, response.text
    assert response.json()["size"] == "32x24"
    assert _b64(response.json()["data"][0]).shape[:2] == (24, 32)


def test_jpeg_with_compression(client):
    def size_at(quality: int) -> int:
        response = client.post("/v1/images/edits", json={
            "prompt": "flip", "image_urls": [_data_url(png(gradient(256, 256)))],
            "response_format": "b64_json", "output_format": "jpeg", "output_compression": quality})
        assert response.status_code == 200, response.text
        raw = base64.b64decode(response.json()["data"][0]["b64_json"])
        assert raw[:3] == b"\xff\xd8\xff"
        return len(raw)

    assert size_at(20) < size_at(95)


def test_background_opaque_flattens_alpha(client):
    response = client.post("/v1/images/edits", json={
        "prompt": "flip", "image_urls": [_data_url(png(gradient(alpha=True)))],
        "response_format": "b64_json", "background": "opaque"})
    assert response.status_code == 200, response.text
    assert response.json()["background"] == "opaque"
    assert _b64(response.json()["data"][0]).shape[2] == 3


def test_transparent_input_stays_transparent(client):
    response = client.post("/v1/images/edits", json={
        "prompt": "flip", "image_urls": [_data_url(png(gradient(alpha=True)))], "response_format": "b64_json"})
    assert response.json()["background"] == "transparent"
    assert _b64(response.json()["data"][0])[..., 3].max() == 200


def test_exif_orientation_applied_and_metadata_dropped(client):
    from PIL import Image
    import io

    pixels = gradient(40, 20)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    exif[0x010F] = "SecretCam"
    jpeg = io.BytesIO()
    Image.fromarray(pixels).save(jpeg, "JPEG", exif=exif, quality=95)
    response = client.post("/v1/images/edits", data={"prompt": "flip horizontally", "response_format": "b64_json"},
                           files={"image": ("a.jpg", jpeg.getvalue(), "image/jpeg")})
    assert response.status_code == 200, response.text
    raw = base64.b64decode(response.json()["data"][0]["b64_json"])
    assert b"SecretCam" not in raw and b"Exif" not in raw
    assert decode(raw).shape[:2] == (40, 20)


def test_generations_json_draws_the_prompt(client):
    response = client.post("/v1/images/generations", json={
        "prompt": "a 64x32 red to blue gradient", "model": "retouch/basic", "output_format": "b64_json"})
    assert response.status_code == 200, response.text
    pixels = _b64(response.json()["data"][0]).astype(int)
    assert pixels.shape[:2] == (32, 64)
    assert pixels[0, 0, 0] > 200 and pixels[0, -1, 2] > 200 and pixels[0, -1, 0] < 50


def test_streaming_emits_completed_events(client):
    response = client.post("/v1/images/edits", json={
        "prompt": "grayscale", "image_urls": [_data_url(png())], "stream": True, "n": 2})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]
    assert [e["type"] for e in events] == ["image_edit.completed"] * 2
    assert decode(base64.b64decode(events[0]["b64_json"])).shape[:2] == (48, 64)


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF", "WEBP", "JPEG"])
def test_input_formats_accepted(client, fmt):
    data = encode(gradient(), fmt)
    response = client.post("/v1/images/edits", data={"prompt": "rotate 180", "response_format": "b64_json"},
                           files={"image": (f"a.{fmt.lower()}", data, "application/octet-stream")})
    assert response.status_code == 200, response.text
    assert _b64(response.json()["data"][0]).shape[:2] == (48, 64)


def test_headers_name_the_model_and_the_cost(client):
    response = client.post("/v1/images/edits", json={"model": "basic", "prompt": "flip", "n": 2,
                                                     "image_urls": [_data_url(png())]})
    assert response.status_code == 200, response.text
    assert response.headers["x-retouch-model"] == "retouch/basic"
    assert float(response.headers["x-retouch-cost-usd"]) == 0.0
    assert "x-retouch-dropped-params" not in response.headers
