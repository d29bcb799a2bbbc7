"""Local outputs behind signed, expiring URLs (RETOUCH_URL_TTL), through a running retouch:
the storage mints the URL, /files/{name} verifies it."""

from __future__ import annotations

import anyio
import httpx
import pytest

from retouch.storage import build_storage
from tests.images import gradient, png
from tests.servers import running_retouch

DATA = png(gradient(12, 8))


@pytest.fixture
def signed(make_settings):
    """A retouch whose output URLs live 60 s, its storage (same files, same secret) and
    the signed URL of one stored output."""
    settings = make_settings(url_ttl=60)
    storage = build_storage(settings)
    with running_retouch(settings) as url:
        stored = anyio.run(storage.put, DATA, "image/png")
        link = anyio.run(lambda: storage.url_for(stored.name, base_url=url + "/"))
        yield url, storage, stored.name, link


def _refused(answer: httpx.Response) -> dict:
    assert answer.status_code == 403
    error = answer.json()["error"]
    assert error["code"] == "invalid_signature" and error["param"] == "signature"
    return error


def test_a_signed_output_url_downloads_and_may_be_cached_until_it_expires(signed):
    url, _, name, link = signed
    assert link.startswith(f"{url}/files/{name}?expires=")
    answer = httpx.get(link)
    assert answer.status_code == 200 and answer.content == DATA
    cache = answer.headers["cache-control"]
    assert cache.startswith("private, max-age=") and 0 < int(cache.rsplit("=", 1)[1]) <= 60


def test_an_unsigned_output_url_is_refused(signed):
    url, _, name, _ = signed
    assert "signed link" in _refused(httpx.get(f"{url}/files/{name}"))["message"]


def test_an_expired_output_url_is_refused(signed):
    url, storage, name, _ = signed
    expired = storage.signer.sign(f"/files/{name}", -5)
    _refused(httpx.get(url + expired))


@pytest.mark.parametrize("tamper", ["signature", "expires", "name"])
def test_a_tampered_output_url_is_refused(signed, tamper):
    url, storage, name, link = signed
    other = anyio.run(storage.put, png(gradient(4, 4)), "image/png").name
    parsed = httpx.URL(link)
    params, path = dict(parsed.params), parsed.path
    if tamper == "signature":
        params["signature"] = params["signature"][:-2] + ("AA" if not params["signature"].endswith("AA") else "BB")
    elif tamper == "expires":
        params["expires"] = str(int(params["expires"]) + 3600)
    else:
        path = f"/files/{other}"  # another real output, with this output's signature
    _refused(httpx.get(url + path, params=params))


def test_without_a_ttl_output_urls_are_plain_and_served_unsigned(make_settings):
    settings = make_settings()
    storage = build_storage(settings)
    with running_retouch(settings) as url:
        stored = anyio.run(storage.put, DATA, "image/png")
        link = anyio.run(lambda: storage.url_for(stored.name, base_url=url))
        assert link == f"{url}/files/{stored.name}"
        answer = httpx.get(link)
        assert answer.status_code == 200 and answer.content == DATA
        assert "immutable" in answer.headers["cache-control"]


def test_lent_input_urls_from_storage_are_served_by_retouch(make_settings):
    settings = make_settings()
    storage = build_storage(settings)
    with running_retouch(settings) as url:
        lent = anyio.run(lambda: storage.put(DATA, "image/png", area="inputs"))
        link = anyio.run(lambda: storage.lend_url(lent.name, base_url=url, ttl_s=30))
        assert httpx.get(link).content == DATA
        assert httpx.get(link.split("?")[0]).status_code == 403
