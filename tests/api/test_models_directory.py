"""The models directory: ids, aliases, capabilities, availability and the fix."""

from __future__ import annotations

import httpx

from tests.servers import running_retouch


def test_list_models_has_basic_with_capabilities(client):
    body = client.get("/v1/models").json()
    assert body["object"] == "list"
    basic = next(m for m in body["data"] if m["id"] == "retouch/basic")
    assert basic["aliases"] == ["basic"]
    assert basic["provider"] == "basic" and basic["available"] is True
    caps = basic["capabilities"]
    assert caps["max_input_images"] == 16 and caps["max_n"] == 10
    assert caps["deterministic"] is True and caps["supports_generation"] is True
    assert set(caps["output_formats"]) == {"png", "jpeg", "webp"}


def test_retrieve_by_id_with_slash_and_by_alias(client):
    assert client.get("/v1/models/retouch/basic").json()["id"] == "retouch/basic"
    assert client.get("/v1/models/basic").json()["id"] == "retouch/basic"


def test_retrieve_unknown_is_404(client):
    response = client.get("/v1/models/none/such")
    assert response.status_code == 404
    assert response.json()["error"]["param"] == "model"


def test_alias_works_for_edits(client):
    import base64

    from tests.images import png

    url = "data:image/png;base64," + base64.b64encode(png()).decode()
    response = client.post("/v1/images/edits", json={"model": "basic", "prompt": "flip", "image_urls": [url]})
    assert response.status_code == 200, response.text


def test_user_models_file_adds_an_unavailable_model(make_settings, tmp_path, monkeypatch):
    models_file = tmp_path / "models.yaml"
    models_file.write_text(
        "models:\n"
        "  - id: acme/needs-key\n"
        "    aliases: [needs-key]\n"
        "    provider: test-keyed\n"
    )
    settings = make_settings(models_file=models_file)
    # A provider from another package, loaded through the entry-point group.
    from importlib.metadata import EntryPoint

    import retouch.providers.registry as registry

    # Installed packages are the edge here: stand in one package's entry point.
    monkeypatch.delenv("ACME_API_KEY", raising=False)
    monkeypatch.setattr(registry, "entry_points",
                        lambda group: [EntryPoint("test-keyed", "tests.fake_providers:KeyedModel", group)])
    with running_retouch(settings) as base:
        card = httpx.get(f"{base}/v1/models/needs-key").json()
        assert card["available"] is False
        assert "ACME_API_KEY" in card["fix"]
        response = httpx.post(f"{base}/v1/images/generations", json={"model": "needs-key", "prompt": "x"})
        assert response.status_code == 503
        assert response.headers["x-should-retry"] == "false"
        assert "ACME_API_KEY" in response.json()["error"]["message"]


def test_shipped_hosted_models_say_which_key_they_need(client, monkeypatch):
    cards = client.get("/v1/models").json()["data"]
    hosted = [c for c in cards if c["provider"] not in ("basic", "upscale", "diffusers")]
    assert len(hosted) >= 5
    for card in hosted:
        if card["available"]:
            continue  # this machine happens to have the key
        assert card["unavailable_reason"].endswith("is not set")
        variable = card["unavailable_reason"].split()[0]
        assert variable.isupper() and variable in card["fix"]
