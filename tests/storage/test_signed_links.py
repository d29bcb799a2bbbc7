"""Signed, expiring links: the signer, its secret, and the route that serves lent inputs."""

from __future__ import annotations

import os
import stat
import time

import anyio
import httpx
import pytest

from retouch.config import Settings, is_internet_url
from retouch.providers.transport import InputLinks, Payload
from retouch.storage import LocalStorage
from retouch.storage.base import INPUTS
from retouch.storage.signing import UrlSigner, load_secret
from tests.images import gradient, png
from tests.servers import running_retouch

SIGNER = UrlSigner(b"s" * 32)
PATH = "/files/inputs/" + "a" * 32 + ".png"


def query(link: str) -> tuple[str, str]:
    params = dict(httpx.URL(link).params)
    return params["expires"], params["signature"]


def test_a_fresh_link_verifies_for_its_path_only():
    expires, signature = query(SIGNER.sign(PATH, 60))
    assert SIGNER.verify(PATH, expires, signature)
    assert not SIGNER.verify(PATH.replace("a", "b"), expires, signature)
    assert not UrlSigner(b"t" * 32).verify(PATH, expires, signature)


def test_links_expire_and_cannot_be_stretched():
    now = time.time()
    expires, signature = query(SIGNER.sign(PATH, 60, now=now))
    assert SIGNER.verify(PATH, expires, signature, now=now + 59)
    assert not SIGNER.verify(PATH, expires, signature, now=now + 61)
    assert not SIGNER.verify(PATH, str(int(expires) + 3600), signature, now=now)


@pytest.mark.parametrize("expires, signature", [(None, "x"), ("1", None), ("-5", "x"), ("soon", "x"),
                                                ("99999999999", "")])
def test_malformed_queries_are_refused(expires, signature):
    assert not SIGNER.verify(PATH, expires, signature)


def test_short_secrets_are_refused():
    with pytest.raises(ValueError):
        UrlSigner(b"short")


def test_secret_is_made_once_private_and_kept(tmp_path):
    first = load_secret("", tmp_path)
    assert len(first) >= 32 and load_secret("", tmp_path) == first
    mode = stat.S_IMODE(os.stat(tmp_path / "signing.key").st_mode)
    assert mode == 0o600
    assert load_secret("configured-secret-of-replicas", tmp_path) == b"configured-secret-of-replicas"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("url, internet", [
    ("https://images.example.com", True), ("http://203.0.113.9:8080", False),  # TEST-NET: not global
    ("https://8.8.8.8", True), ("http://localhost:8080", False), ("http://127.0.0.1:8080", False),
    ("http://10.0.0.5", False), ("http://192.168.1.2:8080", False), ("http://[::1]:8080", False),
    ("http://retouch:8080", False), ("http://retouch.internal", False), ("http://box.local", False),
    ("http://app.localhost", False), ("https://[2001:4860:4860::8888]", True),
])
def test_only_internet_addresses_lend_links_by_default(url, internet):
    assert is_internet_url(url) is internet
    settings = Settings(_env_file=None, public_url=url)
    assert settings.lends_input_links is internet
    assert Settings(_env_file=None, public_url=url, input_links="always").lends_input_links
    assert not Settings(_env_file=None, public_url=url, input_links="never").lends_input_links


def test_no_public_url_never_lends_links():
    assert not Settings(_env_file=None, input_links="always").lends_input_links


@pytest.fixture
def lent(make_settings):
    """A running retouch and an InputLinks lending through it, sharing its storage and key."""
    settings = make_settings()
    with running_retouch(settings) as url:
        storage = LocalStorage(settings.files_dir, signer=UrlSigner(load_secret("", settings.data_dir)))
        yield url, storage, InputLinks(storage, url, ttl_s=60)


def test_a_lent_input_is_served_through_its_link_and_gone_after_close(lent):
    url, storage, links = lent
    data = png(gradient(20, 10))

    async def lend() -> str:
        return await links.link(Payload(data, "image/png"))

    link = anyio.run(lend)
    assert link.startswith(url + "/files/inputs/")
    answer = httpx.get(link)
    assert answer.status_code == 200 and answer.content == data
    assert answer.headers["content-type"] == "image/png" and "no-store" in answer.headers["cache-control"]
    name = httpx.URL(link).path.rsplit("/", 1)[1]
    assert httpx.get(f"{url}/files/{name}").status_code == 404  # not an output: no unsigned access
    anyio.run(links.close)
    assert httpx.get(link).status_code == 404
    assert list((storage.root / INPUTS).iterdir()) == []


@pytest.mark.parametrize("tamper", ["signature", "expires", "name"])
def test_a_tampered_link_is_403_in_the_error_envelope(lent, tamper):
    url, _, links = lent
    link = httpx.URL(anyio.run(links.link, Payload(png(gradient(8, 8)), "image/png")))
    params = dict(link.params)
    path = link.path
    if tamper == "signature":
        params["signature"] = params["signature"][:-2] + "AA"
    elif tamper == "expires":
        params["expires"] = str(int(params["expires"]) + 10)
    else:
        path = path[:-10] + "AAAAAA.png"
    answer = httpx.get(url + path, params=params)
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "invalid_signature"


def test_an_expired_link_is_403(lent):
    url, storage, _ = lent
    expired = InputLinks(storage, url, ttl_s=-1)
    link = anyio.run(expired.link, Payload(png(gradient(8, 8)), "image/png"))
    assert httpx.get(link).status_code == 403
