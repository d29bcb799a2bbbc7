"""The playground's routes over HTTP: pages, assets, caching, policy, weight, and the
price the models directory now reports."""

from __future__ import annotations

from pathlib import Path

import httpx

import retouch
from tests.servers import running_retouch

PLAYGROUND = Path(retouch.__file__).parent / "playground"
PAGE_BUDGET = 300 * 1024


def test_everything_the_pages_load_weighs_under_300_kb():
    files = [path for path in PLAYGROUND.iterdir() if path.is_file()]
    assert {"index.html", "models.html", "app.js", "models.js", "style.css"} <= {p.name for p in files}
    assert sum(path.stat().st_size for path in files) < PAGE_BUDGET


def test_pages_reference_only_their_own_assets(client):
    for page in ("/", "/models"):
        html = client.get(page).text
        assert "http://" not in html and "https://" not in html.replace("https://example.com/photo.png", "")
        assert "/playground/style.css" in html


def test_playground_page_is_html_with_a_strict_policy(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="/playground/app.js">' in response.text
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy and "script-src 'self';" in policy
    assert response.headers["cache-control"] == "no-cache" and response.headers["etag"]
    assert response.headers["x-content-type-options"] == "nosniff"


def test_models_page_is_separate_from_the_api_list(client):
    page = client.get("/models")
    assert page.headers["content-type"].startswith("text/html") and "/playground/models.js" in page.text
    api = client.get("/v1/models")
    assert api.headers["content-type"] == "application/json" and api.json()["object"] == "list"


def test_assets_have_their_content_types_and_revalidate(client):
    script = client.get("/playground/app.js")
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert client.get("/playground/style.css").headers["content-type"] == "text/css; charset=utf-8"
    again = client.get("/playground/app.js", headers={"if-none-match": script.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_unknown_asset_is_404_in_the_error_envelope(client):
    for path in ("/playground/nope.js", "/playground/index.html", "/playground/..%2Fapp.py"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_pages_stay_out_of_the_openapi_schema(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert "/v1/models" in paths
    assert not {"/", "/models", "/playground/{name}"} & set(paths)


def test_pages_load_without_a_key_when_the_api_needs_one(make_settings):
    with running_retouch(make_settings(api_keys="sk-page")) as base:
        assert httpx.get(f"{base}/").status_code == 200
        assert httpx.get(f"{base}/playground/api.js").status_code == 200
        assert httpx.get(f"{base}/v1/models").status_code == 401


def test_models_list_reports_price_per_image(make_settings, tmp_path):
    models_file = tmp_path / "models.yaml"
    models_file.write_text(
        "models:\n"
        "  - id: acme/one-price\n"
        "    provider: fal\n"
        "    model: fal-ai/flux-pro/kontext\n"
        "    price_per_image: 0.05\n"
        "  - id: acme/two-prices\n"
        "    deployments:\n"
        "      - {provider: fal, model: fal-ai/flux-pro/kontext, price_per_image: 0.05}\n"
        "      - {provider: bfl, model: flux-kontext-pro, price_per_image: 0.07}\n"
    )
    with running_retouch(make_settings(models_file=models_file)) as base:
        models = {m["id"]: m for m in httpx.get(f"{base}/v1/models").json()["data"]}
    assert models["retouch/basic"]["price_per_image"] == 0.0
    assert models["acme/one-price"]["price_per_image"] == 0.05
    assert models["acme/two-prices"]["price_per_image"] == 0.07  # the highest: what a budget must allow for
