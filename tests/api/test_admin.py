"""The admin API (``/admin/*`` behind RETOUCH_ADMIN_KEY) against a running retouch: keys
made over HTTP work for images at once, limits change, revocation holds, usage adds up."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.images import gradient, png
from tests.servers import running_retouch

ADMIN_KEY = "admin-0123456789abcdef-secret"


@pytest.fixture
def admin(make_settings):
    with running_retouch(make_settings(admin_key=ADMIN_KEY)) as url, \
            httpx.Client(base_url=url, timeout=30, headers={"authorization": f"Bearer {ADMIN_KEY}"}) as client:
        yield client


def edit(client: httpx.Client, key: str | None, **fields) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {"authorization": ""}
    return client.post("/v1/images/edits", headers=headers, data={"prompt": "grayscale", **fields},
                       files={"image": ("a.png", png(gradient(16, 12)), "image/png")})


def test_a_key_made_over_http_edits_and_is_listed_without_its_secret(admin):
    made = admin.post("/admin/keys", json={"name": "mobile app", "models": ["basic"], "rpm": 100})
    assert made.status_code == 201, made.text
    body = made.json()
    secret = body["key"]
    assert secret.startswith(body["prefix"]) and body["allowed_models"] == ["retouch/basic"]
    assert body["rpm"] == 100 and body["revoked_at"] is None
    assert edit(admin, secret).status_code == 200
    listed = admin.get("/admin/keys").json()["data"]
    assert [k["name"] for k in listed] == ["mobile app"] and secret not in admin.get("/admin/keys").text
    assert admin.get(f"/admin/keys/{body['prefix']}").json()["id"] == body["id"]


def test_revoking_over_http_refuses_the_key_at_once(admin):
    secret = admin.post("/admin/keys", json={"name": "temp"}).json()["key"]
    assert edit(admin, secret).status_code == 200
    revoked = admin.delete(f"/admin/keys/{secret[:10]}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    refused = edit(admin, secret)
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]
    assert [k["name"] for k in admin.get("/admin/keys", params={"include_revoked": "false"}).json()["data"]] == []


def test_patch_changes_limits_and_null_lifts_them(admin):
    made = admin.post("/admin/keys", json={"name": "ci", "rpm": 5, "monthly_budget_usd": 10}).json()
    changed = admin.patch(f"/admin/keys/{made['id']}", json={"rpm": None, "images_per_day": 50, "name": "ci-2"})
    assert changed.status_code == 200
    assert (changed.json()["rpm"], changed.json()["images_per_day"], changed.json()["monthly_budget_usd"],
            changed.json()["name"]) == (None, 50, 10, "ci-2")


def test_usage_sums_requests_images_and_errors_per_key(admin):
    secret = admin.post("/admin/keys", json={"name": "counted"}).json()["key"]
    assert edit(admin, secret, n="2").status_code == 200
    assert edit(admin, secret, prompt="").status_code == 400
    deadline = time.monotonic() + 10
    while True:  # the usage log is written in batches
        rows = admin.get("/admin/usage", params={"since": "1h", "key": secret[:10]}).json()["data"]
        if (rows and rows[0]["requests"] == 2) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert [(r["key_label"], r["requests"], r["images"], r["errors"]) for r in rows] == [(secret[:10], 2, 2, 1)]


@pytest.mark.parametrize("body, param", [
    ({"name": ""}, "name"),
    ({"name": "x", "rpm": -1}, "rpm"),
    ({"name": "x", "models": ["no-such-model"]}, "models"),
    ({"name": "x", "colour": "blue"}, "colour"),
])
def test_bad_key_requests_are_400_naming_the_field(admin, body, param):
    answer = admin.post("/admin/keys", json=body)
    assert answer.status_code == 400 and answer.json()["error"]["param"] == param


def test_unknown_keys_are_404_and_bad_periods_400(admin):
    assert admin.delete("/admin/keys/rt-nothing").json()["error"]["code"] == "key_not_found"
    assert admin.get("/admin/usage", params={"since": "soon"}).json()["error"]["param"] == "since"


def test_the_admin_api_needs_the_admin_key_not_an_api_key(make_settings):
    with running_retouch(make_settings(admin_key=ADMIN_KEY, api_keys="image-key-0123456789")) as url:
        assert httpx.get(f"{url}/admin/keys").status_code == 401
        with_image_key = httpx.get(f"{url}/admin/keys", headers={"authorization": "Bearer image-key-0123456789"})
        assert with_image_key.status_code == 401 and with_image_key.json()["error"]["code"] == "invalid_api_key"
        # And the admin key is not an image key.
        assert httpx.get(f"{url}/v1/models", headers={"authorization": f"Bearer {ADMIN_KEY}"}).status_code == 401


def test_without_an_admin_key_the_admin_api_is_off_and_says_how_to_enable_it(make_settings):
    with running_retouch(make_settings()) as url:
        answer = httpx.get(f"{url}/admin/keys", headers={"authorization": "Bearer anything"})
    assert answer.status_code == 403 and "RETOUCH_ADMIN_KEY" in answer.json()["error"]["message"]
