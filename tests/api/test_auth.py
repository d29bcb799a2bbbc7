"""API keys: both header forms, constant-time checks, an open server only on loopback."""

from __future__ import annotations

import httpx
import pytest

from retouch.config import check_serve_safety
from tests.images import decode, png
from tests.servers import running_retouch, static_server

SEED_BODY = {
    "model": "retouch/basic",  # the seed names dreamomni2-image-to-image
    "prompt": "Replace the first image have the same image style as the second image.",
    "image_urls": ["{static}/example1.png", "{static}/example2.png"],
    "n": 1,
    "output_format": "url",
}


@pytest.fixture
def static(tmp_path):
    from tests.images import solid

    folder = tmp_path / "static"
    folder.mkdir()
    (folder / "example1.png").write_bytes(png(solid((200, 40, 40), 48, 32)))
    (folder / "example2.png").write_bytes(png(solid((40, 40, 200))))
    with static_server(folder) as url:
        yield url


@pytest.fixture
def keyed_server(make_settings, static):
    settings = make_settings(api_keys="sk-alpha, sk-beta", allowed_hosts="127.0.0.1")
    with running_retouch(settings) as url:
        yield url


def _seed_body(static: str) -> dict:
    return {**SEED_BODY, "image_urls": [u.format(static=static) for u in SEED_BODY["image_urls"]]}


@pytest.mark.parametrize("header", ["Bearer sk-alpha", "sk-beta", "bearer sk-alpha"])
def test_seed_request_with_both_header_forms(keyed_server, static, header):
    response = httpx.post(f"{keyed_server}/v1/images/edits", json=_seed_body(static),
                          headers={"Authorization": header, "Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body["created"], int)
    item = body["data"][0]
    assert set(item) == {"url", "b64_json", "revised_prompt"}
    assert item["url"].startswith(keyed_server) and item["b64_json"] == ""
    assert item["revised_prompt"] == "restyle with the colours of the second image"
    restyled = decode(httpx.get(item["url"]).content).astype(int)
    assert restyled.shape[:2] == (32, 48)
    assert restyled[..., 2].mean() > restyled[..., 0].mean(), "red image takes the blue style"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer sk-wrong"}, {"Authorization": "Bearer"},
                                     {"Authorization": "sk-alph"}])
def test_missing_or_wrong_key_is_401(keyed_server, static, headers):
    response = httpx.post(f"{keyed_server}/v1/images/edits", json=_seed_body(static), headers=headers)
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "invalid_api_key" and error["type"] == "invalid_request_error"
    assert "sk-wrong" not in response.text


def test_models_need_a_key_but_files_and_health_do_not(keyed_server):
    assert httpx.get(f"{keyed_server}/v1/models").status_code == 401
    assert httpx.get(f"{keyed_server}/v1/models", headers={"Authorization": "Bearer sk-alpha"}).status_code == 200
    assert httpx.get(f"{keyed_server}/healthz").status_code == 200


def test_open_server_without_keys(client):
    assert client.get("/v1/models").status_code == 200


@pytest.mark.parametrize("host, keys, insecure, refused", [
    ("127.0.0.1", "", False, False),
    ("localhost", "", False, False),
    ("::1", "", False, False),
    ("0.0.0.0", "", False, True),
    ("192.168.1.5", "", False, True),
    ("0.0.0.0", "", True, False),
    ("0.0.0.0", "sk-1", False, False),
])
def test_serve_safety(make_settings, host, keys, insecure, refused):
    problem = check_serve_safety(make_settings(api_keys=keys), host, insecure)
    assert (problem is not None) == refused
    if refused:
        assert "RETOUCH_API_KEYS" in problem and "--insecure-no-auth" in problem
