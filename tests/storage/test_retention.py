"""Retention: old outputs and abandoned lent inputs are deleted (once, by the CLI, or
periodically by a server); nothing younger than its retention is ever touched."""

from __future__ import annotations

import logging
import os
import time

import anyio
import pytest

from retouch.cli import main
from retouch.storage import build_storage
from retouch.storage.base import INPUTS, OUTPUTS
from retouch.storage.retention import RetentionPolicy, prune, pruning_in_background
from tests.backing import free_port
from tests.storage.moto import raw_client

HOUR = 3600.0
POLICY = RetentionPolicy(outputs_s=HOUR, inputs_s=900.0)


async def _file(storage, area: str = OUTPUTS, *, age_s: float = 0.0) -> str:
    """A stored file whose modification time is ``age_s`` seconds ago (local storage)."""
    stored = await storage.put(b"pixels", "image/png", area=area)
    if age_s:
        then = time.time() - age_s
        os.utime(storage.path_of(stored.name, area=area), (then, then))
    return stored.name


async def _names(storage, area: str) -> set[str]:
    return set(await storage.list_older_than(area, time.time() + 60))


@pytest.fixture
def local(make_settings):
    return build_storage(make_settings())


@pytest.mark.anyio
async def test_old_files_go_and_young_ones_stay_in_both_areas(local):
    old_output = await _file(local, age_s=HOUR + 60)
    young_output = await _file(local, age_s=HOUR - 60)
    old_input = await _file(local, INPUTS, age_s=960)
    young_input = await _file(local, INPUTS, age_s=840)
    pruned = await prune(local, POLICY)
    assert pruned.names == {OUTPUTS: [old_output], INPUTS: [old_input]}
    assert await _names(local, OUTPUTS) == {young_output}
    assert await _names(local, INPUTS) == {young_input}


@pytest.mark.anyio
async def test_retention_zero_keeps_outputs_but_still_clears_lent_inputs(local):
    ancient = await _file(local, age_s=365 * 86400)
    await _file(local, INPUTS, age_s=960)
    pruned = await prune(local, RetentionPolicy(outputs_s=0, inputs_s=900.0))
    assert pruned.names[OUTPUTS] == [] and len(pruned.names[INPUTS]) == 1
    assert await _names(local, OUTPUTS) == {ancient} and await _names(local, INPUTS) == set()


@pytest.mark.anyio
async def test_a_dry_run_lists_and_deletes_nothing(local):
    old = await _file(local, age_s=2 * HOUR)
    pruned = await prune(local, POLICY, dry_run=True)
    assert pruned.names[OUTPUTS] == [old] and await _names(local, OUTPUTS) == {old}


@pytest.mark.anyio
async def test_partial_writes_left_by_a_crash_are_swept_after_an_hour(local):
    final = await _file(local, age_s=10)
    for name, age in ((".tmp-dead", 2 * HOUR), (".tmp-writing", 5)):
        path = local.root / name
        path.write_bytes(b"half")
        os.utime(path, (time.time() - age, time.time() - age))
    (local.root / INPUTS).mkdir(exist_ok=True)
    dead_input = local.root / INPUTS / ".tmp-dead"
    dead_input.write_bytes(b"half")
    os.utime(dead_input, (time.time() - 2 * HOUR, time.time() - 2 * HOUR))
    pruned = await prune(local, POLICY)
    assert pruned.partial == 2
    assert sorted(p.name for p in local.root.iterdir() if p.is_file()) == sorted([".tmp-writing", final])
    assert list((local.root / INPUTS).iterdir()) == []


@pytest.mark.anyio
async def test_s3_prunes_by_object_age_in_both_areas(make_s3_settings, s3_endpoint):
    settings = make_s3_settings(s3_prefix="p")
    storage = build_storage(settings)
    for area in (OUTPUTS, INPUTS):
        await storage.put(b"x", "image/png", area=area)
    assert (await prune(storage, POLICY)).total == 0  # everything is seconds old
    pruned = await prune(storage, POLICY, now=time.time() + 2 * HOUR)  # as if two hours passed
    assert len(pruned.names[OUTPUTS]) == 1 and len(pruned.names[INPUTS]) == 1
    assert raw_client(s3_endpoint).list_objects_v2(Bucket=settings.s3_bucket).get("Contents", []) == []


@pytest.mark.anyio
async def test_s3_inputs_go_before_outputs(make_s3_settings):
    storage = build_storage(make_s3_settings())
    output = await storage.put(b"x", "image/png")
    await storage.put(b"y", "image/png", area=INPUTS)
    pruned = await prune(storage, POLICY, now=time.time() + 1200)  # past the links, not the outputs
    assert pruned.names[OUTPUTS] == [] and len(pruned.names[INPUTS]) == 1
    assert await storage.get(output.name) == b"x"


@pytest.fixture
def cli_env(monkeypatch, tmp_path, make_settings):
    """The environment `retouch storage prune` reads, and the local storage it prunes."""
    monkeypatch.setenv("RETOUCH_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("RETOUCH_RETENTION", "1h")
    monkeypatch.setenv("RETOUCH_INPUT_LINK_TTL", "900")
    return build_storage(make_settings(data_dir=tmp_path / "var"))


def test_the_cli_dry_run_names_what_would_go(cli_env, capsys):
    old = anyio.run(lambda: _file(cli_env, age_s=2 * HOUR))
    young = anyio.run(lambda: _file(cli_env, INPUTS, age_s=60))
    assert main(["storage", "prune", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"outputs/{old}" in out and young not in out
    assert "would delete 1 outputs older than 1h, 0 lent inputs" in out
    assert anyio.run(_names, cli_env, OUTPUTS) == {old}


def test_the_cli_prunes_old_files_and_keeps_young_ones(cli_env, capsys):
    anyio.run(lambda: _file(cli_env, age_s=2 * HOUR))
    young_output = anyio.run(lambda: _file(cli_env, age_s=30 * 60))
    anyio.run(lambda: _file(cli_env, INPUTS, age_s=HOUR))
    young_input = anyio.run(lambda: _file(cli_env, INPUTS, age_s=60))
    assert main(["storage", "prune"]) == 0
    assert "deleted 1 outputs older than 1h, 1 lent inputs older than 900 s" in capsys.readouterr().out
    assert anyio.run(_names, cli_env, OUTPUTS) == {young_output}
    assert anyio.run(_names, cli_env, INPUTS) == {young_input}


def test_the_cli_prunes_s3_and_keeps_young_objects(make_s3_settings, monkeypatch, capsys):
    settings = make_s3_settings()
    for name in ("storage", "s3_bucket", "s3_endpoint_url", "s3_region"):
        monkeypatch.setenv(f"RETOUCH_{name.upper()}", str(getattr(settings, name)))
    storage = build_storage(settings)
    stored = anyio.run(storage.put, b"x", "image/png")
    assert main(["storage", "prune"]) == 0
    assert "deleted 0 outputs older than 7d" in capsys.readouterr().out
    assert anyio.run(storage.get, stored.name) == b"x"


def test_the_cli_says_what_is_wrong_with_s3(make_s3_settings, monkeypatch, capsys):
    monkeypatch.setenv("RETOUCH_STORAGE", "s3")
    monkeypatch.setenv("RETOUCH_S3_BUCKET", "no-such-bucket")
    monkeypatch.setenv("RETOUCH_S3_ENDPOINT_URL", make_s3_settings().s3_endpoint_url)
    assert main(["storage", "prune"]) == 1
    assert "'no-such-bucket' does not exist" in capsys.readouterr().err


@pytest.mark.anyio
async def test_a_server_prunes_periodically_until_stopped(local):
    young = await _file(local, age_s=60)
    with anyio.fail_after(20):  # leaving the block must stop the task, or this fails
        async with pruning_in_background(local, POLICY, interval_s=0.02):
            for _ in range(2):  # files that grow old later are caught by a later round
                old = await _file(local, age_s=2 * HOUR)
                while old in await _names(local, OUTPUTS):
                    await anyio.sleep(0.02)
    assert await _names(local, OUTPUTS) == {young}


@pytest.mark.anyio
async def test_a_failing_prune_is_logged_and_retried(make_s3_settings, caplog):
    storage = build_storage(make_s3_settings(s3_endpoint_url=f"http://127.0.0.1:{free_port()}"))
    caplog.set_level(logging.WARNING, logger="retouch.storage.retention")
    async with pruning_in_background(storage, POLICY, interval_s=0.01):
        with anyio.fail_after(20):
            while len([r for r in caplog.records if "prune failed" in r.getMessage()]) < 2:
                await anyio.sleep(0.02)


def test_policy_follows_the_settings(make_settings):
    policy = RetentionPolicy.from_settings(make_settings(retention="7d", input_link_ttl=900))
    assert policy == RetentionPolicy(outputs_s=7 * 86400, inputs_s=900)
    assert policy.interval_s == 450  # half the shortest age, between a minute and an hour
    assert RetentionPolicy(outputs_s=0, inputs_s=30).interval_s == 60
