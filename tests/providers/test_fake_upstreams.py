"""The fake upstreams themselves: they read images by URL as the providers do, and the fake
Replicate keeps files. Retouch is not involved; these keep the fakes honest."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator

import httpx
import pytest

from tests.images import gradient, png, solid
from tests.providers import fake_bfl, fake_fal, fake_openai, fake_replicate
from tests.providers.fake_inputs import ImageRefError, image_bytes
from tests.servers import static_server

IMAGE = png(gradient())


@pytest.fixture(scope="module")
def image_host(tmp_path_factory) -> Iterator[str]:
    """A plain web server holding ``in.png`` (IMAGE) and a folder (which redirects)."""
    folder = tmp_path_factory.mktemp("image_host")
    (folder / "in.png").write_bytes(IMAGE)
    (folder / "folder").mkdir()
    with static_server(folder) as url:
        yield url


# -- fake_inputs.image_bytes ----------------------------------------------------------------


@pytest.mark.anyio
async def test_image_bytes_reads_data_urls_and_downloads_http_urls(image_host):
    assert await image_bytes("data:image/png;base64," + base64.b64encode(IMAGE).decode()) == IMAGE
    assert await image_bytes(f"{image_host}/in.png") == IMAGE


@pytest.mark.anyio
@pytest.mark.parametrize("ref", ["{host}/missing.png", "{host}/folder", "data:image/png,raw",
                                 "data:image/png;base64,@@@", "ftp://example.org/in.png"])
async def test_image_bytes_refuses_what_a_provider_could_not_read(image_host, ref):
    with pytest.raises(ImageRefError):  # /folder answers a redirect, which is not followed
        await image_bytes(ref.format(host=image_host))


# -- each fake that takes URLs fetches them -------------------------------------------------


def fal_submit(fake: fake_fal.FakeFal, ref: str) -> tuple[httpx.Response, list[bytes]]:
    answer = httpx.post(f"{fake.base_url}/fal-ai/flux-pro/kontext", json={"prompt": "x", "image_url": ref})
    return answer, fake.submissions[-1].images


def replicate_submit(fake: fake_replicate.FakeReplicate, ref: str) -> tuple[httpx.Response, list[bytes]]:
    answer = httpx.post(f"{fake.base_url}/v1/models/acme/kontext/predictions",
                        headers={"Authorization": f"Bearer {fake_replicate.TOKEN}"},
                        json={"input": {"prompt": "x", "input_image": ref}})
    return answer, fake.submissions[-1].images


def bfl_submit(fake: fake_bfl.FakeBfl, ref: str) -> tuple[httpx.Response, list[bytes]]:
    answer = httpx.post(f"{fake.base_url}/v1/flux-kontext-pro", headers={"x-key": fake_bfl.KEY},
                        json={"prompt": "x", "input_image": ref})
    return answer, fake.submissions[-1].images


def siraya_submit(fake: fake_openai.FakeOpenAI, ref: str) -> tuple[httpx.Response, list[bytes]]:
    answer = httpx.post(f"{fake.url}/v1/images/edits", headers={"Authorization": fake.key},
                        json={"model": "m", "prompt": "x", "image_urls": [ref]})
    return answer, fake.received[-1].images


FAKES = {
    "fal": (fake_fal.running_fake_fal, fal_submit),
    "replicate": (fake_replicate.running_fake_replicate, replicate_submit),
    "bfl": (fake_bfl.running_fake_bfl, bfl_submit),
    "siraya": (lambda: fake_openai.running_fake(fake_openai.FakeOpenAI(auth="plain", edits="json")),
               siraya_submit),
}


@pytest.mark.parametrize("name", list(FAKES))
def test_fake_downloads_an_http_image_url_and_refuses_one_it_cannot_read(name, image_host):
    running, submit = FAKES[name]
    with running() as fake:
        answer, images = submit(fake, f"{image_host}/in.png")
        assert answer.status_code < 300 and images == [IMAGE]
        answer, images = submit(fake, f"{image_host}/missing.png")
        assert answer.status_code in (400, 422) and images == []


def test_bfl_fake_still_reads_bare_base64():
    with fake_bfl.running_fake_bfl() as fake:
        answer, images = bfl_submit(fake, base64.b64encode(IMAGE).decode())
    assert answer.status_code == 200 and images == [IMAGE]


# -- the fake Replicate's Files API -----------------------------------------------------------


def test_replicate_files_are_uploaded_read_used_as_input_and_deleted():
    auth = {"Authorization": f"Bearer {fake_replicate.TOKEN}"}
    red = png(solid((200, 0, 0)))
    with fake_replicate.running_fake_replicate() as fake, \
            httpx.Client(base_url=f"{fake.base_url}/v1", headers=auth) as api:
        created = api.post("/files", files={"content": ("red.png", red, "image/png")},
                           data={"metadata": '{"job": "j1"}'})
        assert created.status_code == 201
        body = created.json()
        assert (body["name"], body["content_type"], body["size"], body["metadata"]) == (
            "red.png", "image/png", len(red), {"job": "j1"})
        assert body["checksums"] == {"sha256": hashlib.sha256(red).hexdigest()}
        assert body["urls"]["get"] == f"{fake.base_url}/v1/files/{body['id']}"
        assert {"etag", "created_at", "expires_at"} <= body.keys()
        assert api.get(f"/files/{body['id']}").json() == body
        assert httpx.get(body["urls"]["get"]).status_code == 401  # no token, no file

        answer, images = replicate_submit(fake, body["urls"]["get"])
        assert answer.status_code == 201 and images == [red]

        assert api.delete(f"/files/{body['id']}").status_code == 204
        assert fake.deleted_files == [body["id"]] and [u.id for u in fake.uploads] == [body["id"]]
        assert api.get(f"/files/{body['id']}").status_code == 404
        answer, _ = replicate_submit(fake, body["urls"]["get"])
        assert answer.status_code == 422


def test_replicate_files_need_a_content_part_and_object_metadata():
    auth = {"Authorization": f"Bearer {fake_replicate.TOKEN}"}
    with fake_replicate.running_fake_replicate() as fake, \
            httpx.Client(base_url=f"{fake.base_url}/v1", headers=auth) as api:
        assert api.post("/files", files={"file": ("a.png", IMAGE, "image/png")}).status_code == 400
        assert api.post("/files", files={"content": ("a.png", IMAGE, "image/png")},
                        data={"metadata": "[1, 2]"}).status_code == 400
        assert fake.uploads == []
