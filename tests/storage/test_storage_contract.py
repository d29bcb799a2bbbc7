"""The contract every storage backend keeps (local today; S3 joins the same suite)."""

from __future__ import annotations

import pytest

from retouch.storage import LocalStorage
from retouch.storage.base import is_valid_name


@pytest.fixture(params=["local"])
def storage(request, tmp_path):
    return LocalStorage(tmp_path / "files")


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
