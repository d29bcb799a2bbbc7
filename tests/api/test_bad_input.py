"""Bad input gets a clear 4xx in the OpenAI envelope, and the server keeps serving."""

from __future__ import annotations

import struct
import zlib

import pytest

from tests.images import gradient, png


def _png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width×height but which carries almost no data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))  # noqa: E731
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def _edit(client, *, prompt="grayscale", files=None, data=None):
    fields = {"prompt": prompt, "response_format": "b64_json", **(data or {})}
    files = files if files is not None else [("image", ("a.png", png(), "image/png"))]
    return client.post("/v1/images/edits", data=fields, files=files)


def _assert_error(response, status: int, param: str | None, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    assert error["message"]
    return error


BAD_FILES = {
    "zero_bytes": (b"", 400, "invalid_image"),
    "text_named_png": (b"hello, I am not an image at all\n" * 4, 400, "invalid_image"),
    "truncated_png": (png(gradient(256, 256))[:400], 400, "invalid_image"),
    "corrupt_png_body": (png(gradient(64, 64))[:60] + b"\x00" * 500 + png(gradient(64, 64))[560:], 400, "invalid_image"),
    "huge_header": (_png_header_claiming(100_000, 100_000), 413, "image_too_large"),
    "corrupt_jpeg": (b"\xff\xd8\xff\xe0" + b"\x13" * 300, 400, "invalid_image"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_image_files_are_clear_errors(client, name):
    content, status, code = BAD_FILES[name]
    response = _edit(client, files=[("image", ("x.png", content, "image/png"))])
    _assert_error(response, status, "image", code)
    assert _edit(client).status_code == 200, "server must keep serving"


def test_seventeen_images_refused(client):
    files = [("image[]", (f"{i}.png", png(), "image/png")) for i in range(17)]
    error = _assert_error(_edit(client, files=files), 400, "image", "too_many_images")
    assert "16" in error["message"]


@pytest.mark.parametrize("n", ["0", "11", "-1", "two"])
def test_n_out_of_range(client, n):
    error = _assert_error(_edit(client, data={"n": n}), 400, "n")
    assert n in error["message"]


@pytest.mark.parametrize("prompt", ["", "   "])
def test_empty_prompt(client, prompt):
    _assert_error(_edit(client, prompt=prompt), 400, "prompt")


def test_missing_prompt_json(client):
    response = client.post("/v1/images/edits", json={"image_urls": ["data:image/png;base64,AAAA"]})
    _assert_error(response, 400, "prompt")


def test_unknown_field_is_named(client):
    error = _assert_error(_edit(client, data={"guidance_scale": "7"}), 400, "guidance_scale", "unknown_parameter")
    assert "retouch/basic" in error["message"]


def test_unknown_model_lists_available(client):
    response = client.post("/v1/images/edits", json={"model": "nope/model", "prompt": "grayscale",
                                                     "image_urls": ["data:image/png;base64,AAAA"]})
    error = _assert_error(response, 404, "model", "model_not_found")
    assert "retouch/basic" in error["message"] and "nope/model" in error["message"]


def test_unsupported_instruction_is_422(client):
    error = _assert_error(_edit(client, prompt="make it look like a van gogh painting with unicorns"),
                          422, "prompt", "unsupported_instruction")
    assert error["type"] == "invalid_request_error"
    assert "Examples" in error["message"]


def test_half_understood_prompt_fails_whole(client):
    error = _assert_error(_edit(client, prompt="grayscale, then add a unicorn"), 422, "prompt")
    assert "add a unicorn" in error["message"]


def test_instruction_needing_a_second_image(client):
    error = _assert_error(_edit(client, prompt="same style as the second image"), 400, "image", "missing_image")
    assert "second image" in error["message"]


def test_edit_without_an_image(client):
    response = client.post("/v1/images/edits", json={"prompt": "grayscale"})
    error = _assert_error(response, 400, "image", "missing_image")
    assert "generations" in error["message"]


@pytest.mark.parametrize("fields, param", [
    ({"output_format": "gif"}, "output_format"),
    ({"response_format": "b64_json", "output_format": "url"}, "output_format"),
    ({"size": "huge"}, "size"),
    ({"size": "0x10"}, "size"),
    ({"size": "99999x99999"}, "size"),
    ({"background": "purple"}, "background"),
    ({"background": "transparent", "output_format": "jpeg"}, "background"),
    ({"output_compression": "50"}, "output_compression"),
    ({"output_compression": "150", "output_format": "jpeg"}, "output_compression"),
    ({"quality": "ultra"}, "quality"),
])
def test_bad_scalars_name_their_param(client, fields, param):
    _assert_error(_edit(client, data=fields), 400, param)


def test_mask_operation_without_a_mask(client):
    error = _assert_error(_edit(client, prompt="inpaint the masked area"), 400, "mask", "missing_mask")
    assert "transparent" in error["message"]


def test_malformed_json(client):
    response = client.post("/v1/images/edits", content=b"{not json", headers={"content-type": "application/json"})
    _assert_error(response, 400, None, "invalid_json")


def test_json_array_body(client):
    response = client.post("/v1/images/edits", json=["grayscale"])
    _assert_error(response, 400, None, "invalid_json")


def test_wrong_content_type(client):
    response = client.post("/v1/images/edits", content=b"grayscale", headers={"content-type": "text/plain"})
    _assert_error(response, 400, None, "unsupported_content_type")


@pytest.mark.parametrize("url", ["data:image/png,notbase64", "data:image/png;base64,@@@@", "ftp://x/y.png"])
def test_bad_data_and_scheme_urls(client, url):
    response = client.post("/v1/images/edits", json={"prompt": "grayscale", "image_urls": [url]})
    _assert_error(response, 400, "image_urls")


def test_file_id_inputs_explained(client):
    response = client.post("/v1/images/edits", json={"prompt": "grayscale", "images": [{"file_id": "file-1"}]})
    error = _assert_error(response, 400, "images")
    assert "file_id" in error["message"]


def test_mask_of_wrong_size(client):
    from tests.images import solid

    files = [("image", ("a.png", png(), "image/png")), ("mask", ("m.png", png(solid((0, 0, 0, 0), 8, 8)), "image/png"))]
    error = _assert_error(_edit(client, files=files), 400, "mask", "invalid_mask")
    assert "8x8" in error["message"] and "64x48" in error["message"]


def test_unknown_route_and_method_in_envelope(client):
    _assert_error(client.get("/v1/nothing"), 404, None)
    _assert_error(client.get("/v1/images/edits"), 405, None)


def _noise_png(side: int = 300) -> bytes:
    import numpy as np

    return png(np.random.default_rng(1).integers(0, 256, (side, side, 3), dtype=np.uint8))


def test_request_too_large(make_settings):
    import httpx

    from tests.servers import running_retouch

    with running_retouch(make_settings(max_request_bytes=10_000)) as base, httpx.Client(base_url=base) as http:
        response = http.post("/v1/images/edits", data={"prompt": "grayscale"},
                             files=[("image", ("a.png", _noise_png(), "image/png"))])
        _assert_error(response, 413, None, "payload_too_large")


def test_upload_above_file_cap(make_settings):
    import httpx

    from tests.servers import running_retouch

    with running_retouch(make_settings(max_upload_bytes=5_000)) as base, httpx.Client(base_url=base) as http:
        response = http.post("/v1/images/edits", data={"prompt": "grayscale"},
                             files=[("image", ("a.png", _noise_png(), "image/png"))])
        _assert_error(response, 413, "image", "image_too_large")


def test_pixel_cap_is_configurable(make_settings):
    import httpx

    from tests.servers import running_retouch

    with running_retouch(make_settings(max_pixels=1000)) as base, httpx.Client(base_url=base) as http:
        response = http.post("/v1/images/edits", data={"prompt": "grayscale"},
                             files=[("image", ("a.png", png(), "image/png"))])
        error = _assert_error(response, 413, "image", "image_too_large")
        assert "RETOUCH_MAX_PIXELS" in error["message"]
