"""The contract every storage backend keeps: one suite over local files and S3 (a moto
server speaking the S3 protocol over HTTP)."""

from __future__ import annotations

import time

import pytest

from retouch.storage import LocalStorage, StorageUnavailableError, build_storage
from retouch.storage.base import INPUTS, OUTPUTS, is_valid_name


@pytest.fixture(params=["local", "s3"])
def storage(request, make_settings):
    if request.param == "s3":
        return build_storage(request.getfixturevalue("make_s3_settings")())
    return build_storage(make_settings())


@pytest.mark.anyio
async def test_put_then_get_round_trips(storage):
    stored = await storage.put(b"\x89PNG fake", "image/png")
    assert stored.name.endswith(".png") and stored.size == 9
    assert await storage.get(stored.name) == b"\x89PNG fake"


@pytest.mark.anyio
async def test_names_are_unguessable_and_distinct(storage):
    names = {(await storage.put(b"x", "image/webp")).name for _ in range(50)}
    assert len(names) == 50
    for name in names:
        stem = name.split(".")[0]
        assert len(stem) == 32  # 24 random bytes, base64url: 192 bits
        assert is_valid_name(name)


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["../secret.png", "..%2Fx.png", "a.png", "/etc/passwd", "x" * 32 + ".exe", ""])
async def test_foreign_names_are_not_served(storage, name):
    assert await storage.get(name) is None
    assert await storage.delete(name) is False


@pytest.mark.anyio
async def test_delete(storage):
    stored = await storage.put(b"data", "image/jpeg")
    assert await storage.delete(stored.name) is True
    assert await storage.get(stored.name) is None
    assert await storage.delete(stored.name) is False


@pytest.mark.anyio
async def test_local_writes_leave_no_temp_files(tmp_path):
    storage = LocalStorage(tmp_path / "files")
    for _ in range(5):
        await storage.put(b"abc" * 1000, "image/png")
    names = [p.name for p in (tmp_path / "files").iterdir()]
    assert len(names) == 5 and not any(n.startswith(".tmp-") for n in names)


def test_files_route_refuses_traversal(client):
    for path in ("/files/..%2F..%2Fetc%2Fpasswd", "/files/notreal.png"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] in ("file_not_found", "not_found")


@pytest.mark.anyio
async def test_areas_are_kept_apart(storage):
    lent = await storage.put(b"input", "image/png", area="inputs")
    output = await storage.put(b"output", "image/png")
    assert await storage.get(lent.name) is None and await storage.get(output.name, area="inputs") is None
    assert await storage.get(lent.name, area="inputs") == b"input"
    assert await storage.delete(lent.name) is False
    assert await storage.delete(lent.name, area="inputs") is True
    assert storage.url_path(lent.name, area="inputs") == f"/files/inputs/{lent.name}"


@pytest.mark.anyio
async def test_unknown_area_is_refused(storage):
    with pytest.raises(ValueError):
        await storage.put(b"x", "image/png", area="../elsewhere")
    with pytest.raises(ValueError):
        await storage.list_older_than("../elsewhere", time.time())


@pytest.mark.anyio
async def test_listing_by_age_sees_each_area_alone(storage):
    assert await storage.list_older_than(INPUTS, time.time() + 60) == []  # nothing stored yet
    output = await storage.put(b"out", "image/png")
    lent = await storage.put(b"in", "image/webp", area=INPUTS)
    later, earlier = time.time() + 60, time.time() - 60
    assert await storage.list_older_than(OUTPUTS, later) == [output.name]
    assert await storage.list_older_than(INPUTS, later) == [lent.name]
    assert await storage.list_older_than(OUTPUTS, earlier) == []
    assert await storage.list_older_than(INPUTS, earlier) == []


@pytest.mark.anyio
async def test_deleted_files_leave_the_listing(storage):
    kept = await storage.put(b"a", "image/png")
    gone = await storage.put(b"b", "image/png")
    await storage.delete(gone.name)
    assert await storage.list_older_than(OUTPUTS, time.time() + 60) == [kept.name]


@pytest.mark.anyio
async def test_usable_storage_passes_its_check(storage):
    await storage.check()


@pytest.mark.anyio
async def test_output_and_lent_urls_name_the_file(storage):
    stored = await storage.put(b"x", "image/png")
    lent = await storage.put(b"y", "image/png", area=INPUTS)
    output_url = await storage.url_for(stored.name, base_url="https://retouch.example")
    lent_url = await storage.lend_url(lent.name, base_url="https://retouch.example", ttl_s=60)
    assert stored.name in output_url and lent.name in lent_url
    assert f"{INPUTS}/{lent.name}" in lent_url and "inputs" not in output_url


@pytest.mark.anyio
async def test_an_unusable_local_directory_fails_its_check_with_the_fix(tmp_path):
    storage = LocalStorage(tmp_path / "files")
    (tmp_path / "files").rmdir()
    (tmp_path / "files").write_bytes(b"a file where the directory should be")
    with pytest.raises(StorageUnavailableError) as caught:
        await storage.check()
    assert str(tmp_path / "files") in caught.value.message and "RETOUCH_DATA_DIR" in caught.value.message
