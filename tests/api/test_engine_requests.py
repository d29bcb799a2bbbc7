"""The built-in engine through the API: masks, transparent backgrounds, generations."""

from __future__ import annotations

import base64

import numpy as np

from tests.images import decode, gradient, png, solid


def _edit(client, prompt, images, mask=None, **fields):
    files = [("image[]", (f"{i}.png", png(p), "image/png")) for i, p in enumerate(images)]
    if mask is not None:
        files.append(("mask", ("mask.png", png(mask), "image/png")))
    return client.post("/v1/images/edits", data={"prompt": prompt, "response_format": "b64_json", **fields},
                       files=files)


def _pixels(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return decode(base64.b64decode(response.json()["data"][0]["b64_json"]))


def _left_half_mask(width=64, height=48) -> np.ndarray:
    mask = np.full((height, width, 4), 255, np.uint8)
    mask[:, : width // 2, 3] = 0  # transparent = edit here
    return mask


def test_mask_keeps_an_ordinary_edit_inside_the_region(client):
    image = gradient()
    response = _edit(client, "grayscale", [image], mask=_left_half_mask())
    out = _pixels(response)
    left, right = out[:, :32], out[:, 32:]
    assert np.array_equal(left[..., 0], left[..., 2]), "masked half is gray"
    assert np.array_equal(right[..., :3], image[:, 32:]), "the rest is untouched"
    assert response.json()["data"][0]["revised_prompt"] == "grayscale; only inside the mask"


def test_mask_with_a_size_changing_edit_is_refused(client):
    response = _edit(client, "rotate 90 degrees", [gradient()], mask=_left_half_mask())
    assert response.status_code == 422
    assert response.json()["error"]["param"] == "mask"


def test_mask_must_match_the_first_image(client):
    response = _edit(client, "grayscale", [gradient()], mask=_left_half_mask(10, 10))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_mask"


def test_mask_without_alpha_uses_white_as_the_region(client):
    mask = np.zeros((48, 64, 3), np.uint8)
    mask[:, 32:] = 255
    out = _pixels(_edit(client, "invert", [gradient()], mask=mask))
    assert np.array_equal(out[:, :32], gradient()[:, :32])
    assert np.array_equal(out[:, 32:], 255 - gradient()[:, 32:])


def test_background_transparent_removes_a_plain_background(client):
    image = solid((255, 255, 255), 64, 64)
    image[16:48, 16:48] = (200, 30, 30)
    response = _edit(client, "flip", [image], background="transparent")
    out = _pixels(response)
    assert out.shape[2] == 4 and out[0, 0, 3] == 0 and out[32, 32, 3] == 255
    assert response.json()["background"] == "transparent"


def test_generation_with_text_on_a_gradient(client):
    response = client.post("/v1/images/generations", json={
        "prompt": "a 256x128 blue to purple gradient with the text 'Hello'", "response_format": "b64_json"})
    out = _pixels(response)
    assert out.shape[:2] == (128, 256)
    plain = client.post("/v1/images/generations", json={
        "prompt": "a 256x128 blue to purple gradient", "response_format": "b64_json"})
    assert np.abs(out.astype(int) - _pixels(plain).astype(int)).sum() > 0, "text changed pixels"
    assert "Hello" in response.json()["data"][0]["revised_prompt"]
