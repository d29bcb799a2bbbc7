"""Managed keys and the usage log, on SQLite and on a real PostgreSQL, through the CLI
and a running retouch."""

from __future__ import annotations

import json

import anyio
import httpx
import pytest
from sqlalchemy import text

from retouch.cli import main
from retouch.db import Database
from tests.images import gradient, png
from tests.servers import running_retouch


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return ""  # the default: SQLite in the data directory
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def env(database_url, tmp_path, monkeypatch):
    """The environment `retouch` commands and servers read, for one database."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RETOUCH_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("RETOUCH_API_KEYS", raising=False)
    if database_url:
        monkeypatch.setenv("RETOUCH_DATABASE_URL", database_url)
    else:
        monkeypatch.delenv("RETOUCH_DATABASE_URL", raising=False)
    return {"database_url": database_url, "data_dir": tmp_path / "var"}


@pytest.fixture
def server(env, make_settings):
    settings = make_settings(data_dir=env["data_dir"], database_url=env["database_url"])
    with running_retouch(settings) as url:
        yield url


def create_key(capsys, *options: str) -> str:
    assert main(["keys", "create", "--name", "team", *options]) == 0
    return capsys.readouterr().out.splitlines()[0]


def edit(url: str, key: str | None, **fields) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{url}/v1/images/edits", headers=headers, timeout=30,
                      data={"prompt": "grayscale", **fields},
                      files={"image": ("a.png", png(gradient(16, 12)), "image/png")})


def usage_rows(url_env: dict) -> list[dict]:
    from retouch.config import Settings

    async def read() -> list[dict]:
        database = Database(Settings(_env_file=None, data_dir=url_env["data_dir"],
                                     database_url=url_env["database_url"]).database)
        try:
            async with database.session() as session:
                result = await session.execute(text("SELECT * FROM usage ORDER BY id"))
                return [dict(row._mapping) for row in result]
        finally:
            await database.aclose()

    return anyio.run(read)


def eventually_rows(env: dict, count: int) -> list[dict]:
    import time

    deadline = time.monotonic() + 10
    while True:
        rows = usage_rows(env)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def test_a_created_key_works_and_a_revoked_one_stops_at_once(env, server, capsys):
    assert edit(server, None).status_code == 200  # no key exists yet: an open (loopback) server
    key = create_key(capsys)
    assert key.startswith("rt-") and len(key) > 40
    assert edit(server, key).status_code == 200
    assert edit(server, None).status_code == 401  # a key exists: the server is closed now
    assert edit(server, key[:-2] + "xx").status_code == 401
    assert main(["keys", "revoke", key[:10]]) == 0
    refused = edit(server, key)
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]


def test_only_the_digest_is_stored(env, server, capsys):
    key = create_key(capsys)
    assert main(["keys", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["prefix"] == key[:10] and "key_hash" not in listed[0]

    async def dump() -> str:
        from retouch.config import Settings
        database = Database(Settings(_env_file=None, data_dir=env["data_dir"],
                                     database_url=env["database_url"]).database)
        try:
            async with database.session() as session:
                rows = (await session.execute(text("SELECT * FROM api_keys"))).all()
                return repr(rows)
        finally:
            await database.aclose()

    stored = anyio.run(dump)
    assert key not in stored and key[:10] in stored


def test_a_key_limited_to_some_models_gets_403_for_others(env, server, capsys):
    key = create_key(capsys, "--models", "gpt-image-1")
    refused = edit(server, key)  # retouch/basic, the default
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "model_not_allowed" and error["param"] == "model" and "gpt-image-1" in error["message"]
    allowed = create_key(capsys, "--models", "basic")  # an alias counts
    assert edit(server, allowed).status_code == 200


def test_every_outcome_is_a_usage_row_and_keys_usage_sums_them(env, server, capsys):
    key = create_key(capsys)
    assert edit(server, key, n="2").status_code == 200
    assert edit(server, key, model="no/such-model").status_code == 404
    assert edit(server, key, prompt="").status_code == 400
    rows = eventually_rows(env, 3)
    assert [row["status"] for row in rows] == [200, 404, 400]
    ok, missing, empty = rows
    assert ok["images_out"] == 2 and ok["n"] == 2 and ok["served_by"] == "retouch/basic"
    assert ok["bytes_in"] > 0 and ok["bytes_out"] > 0 and ok["latency_ms"] > 0
    assert ok["key_label"] == key[:10] and ok["key_id"] is not None and len(ok["request_id"]) >= 16
    assert missing["error_type"] == "model_not_found" and missing["model"] == "no/such-model"
    assert empty["error_type"] is not None and empty["images_out"] == 0
    assert key not in repr(rows)
    assert main(["keys", "usage", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == [{"key_id": ok["key_id"], "key_label": key[:10], "requests": 3, "images": 2,
                        "spend_usd": 0.0, "errors": 2}]


def test_upgrade_is_idempotent_and_safe_from_two_replicas_at_once(env):
    from retouch.config import Settings

    async def twice() -> None:
        url = Settings(_env_file=None, data_dir=env["data_dir"], database_url=env["database_url"]).database
        first, second = Database(url), Database(url)
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(first.upgrade)
                group.start_soon(second.upgrade)
            await first.upgrade()
            await first.check()
        finally:
            await first.aclose()
            await second.aclose()

    anyio.run(twice)
    assert main(["db", "upgrade"]) == 0


def test_serve_on_a_public_address_starts_once_a_managed_key_exists(env, capsys):
    import subprocess
    import sys

    from tests.backing import free_port

    def serve(port: int) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "retouch.cli", "serve", "--host", "0.0.0.0",
                                 "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    refused = serve(free_port())
    _, stderr = refused.communicate(timeout=60)
    assert refused.returncode == 2 and "retouch keys create" in stderr
    create_key(capsys)
    port = free_port()
    started = serve(port)
    try:
        assert wait_until_answers(f"http://127.0.0.1:{port}/healthz", started)
    finally:
        started.terminate()
        started.communicate(timeout=30)


def wait_until_answers(url: str, process, timeout: float = 60.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            time.sleep(0.1)
    return False
