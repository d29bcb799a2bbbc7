"""http(s) image URLs go through the SSRF-safe fetcher, in the order given."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest

from tests.images import decode, gradient, png, solid
from tests.servers import running_retouch, static_server


@pytest.fixture
def images_dir(tmp_path):
    folder = tmp_path / "static"
    folder.mkdir()
    (folder / "red.png").write_bytes(png(solid((230, 20, 20), 40, 30)))
    (folder / "blue.png").write_bytes(png(solid((20, 20, 230), 20, 20)))
    (folder / "grad.png").write_bytes(png(gradient()))
    (folder / "notes.txt").write_bytes(b"not an image")
    return folder


@pytest.fixture
def static(images_dir):
    with static_server(images_dir) as url:
        yield url


def _post(base: str, body: dict) -> httpx.Response:
    return httpx.post(f"{base}/v1/images/edits", json=body, timeout=30)


def test_urls_fetched_in_order_when_private_allowed(make_settings, static):
    with running_retouch(make_settings(allow_private_urls=True)) as base:
        response = _post(base, {"prompt": "same style as the second image", "response_format": "b64_json",
                                "image_urls": [f"{static}/red.png", f"{static}/blue.png"]})
    assert response.status_code == 200, response.text
    out = decode(base64.b64decode(response.json()["data"][0]["b64_json"])).astype(int)
    assert out.shape[:2] == (30, 40), "the first URL is the image edited"
    assert out[..., 2].mean() > out[..., 0].mean()


def test_allowed_hosts_setting_opens_one_host(make_settings, static):
    with running_retouch(make_settings(allowed_hosts="127.0.0.1")) as base:
        response = _post(base, {"prompt": "flip", "response_format": "b64_json",
                                "images": [{"image_url": f"{static}/grad.png"}]})
    assert response.status_code == 200, response.text
    assert np.array_equal(decode(base64.b64decode(response.json()["data"][0]["b64_json"])), gradient()[:, ::-1])


def test_same_url_refused_by_default(make_settings, static):
    with running_retouch(make_settings()) as base:
        response = _post(base, {"prompt": "flip", "image_urls": [f"{static}/grad.png"]})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "url_not_allowed" and error["param"] == "image_urls"
    assert "RETOUCH_ALLOW_PRIVATE_URLS" in error["message"]


def test_fetched_non_image_and_missing_file(make_settings, static):
    with running_retouch(make_settings(allow_private_urls=True)) as base:
        not_image = _post(base, {"prompt": "flip", "image_urls": [f"{static}/notes.txt"]})
        missing = _post(base, {"prompt": "flip", "image_urls": [f"{static}/absent.png"]})
    assert not_image.status_code == 400 and not_image.json()["error"]["code"] == "invalid_image"
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "image_fetch_failed"


def test_fetch_byte_cap_from_settings(make_settings, static):
    with running_retouch(make_settings(allow_private_urls=True, max_fetch_bytes=100)) as base:
        response = _post(base, {"prompt": "flip", "image_urls": [f"{static}/grad.png"]})
    assert response.status_code == 413
    assert "RETOUCH_MAX_FETCH_BYTES" in response.json()["error"]["message"]


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:1/x.png", "http://localhost/x.png", "http://169.254.169.254/latest/meta-data/",
    "http://2130706433/x.png", "http://[::1]/x.png", "http://10.1.2.3/x.png", "file:///etc/passwd",
])
def test_hostile_urls_refused_through_the_api(client, url):
    response = client.post("/v1/images/edits", json={"prompt": "flip", "image_urls": [url]})
    assert response.status_code == 400
    assert response.json()["error"]["code"] in ("url_not_allowed", "invalid_url")
