"""Idempotency keys on a real database (SQLite and PostgreSQL), one or two replicas."""

from __future__ import annotations

import asyncio
import datetime as dt
import io

import anyio
import pytest
from sqlalchemy import select, update

from retouch.config import Settings
from retouch.db import Database
from retouch.db.tables import IdempotentRequest
from retouch.errors import ConflictError, InvalidRequestError
from retouch.idempotency import (
    IdempotencyStore,
    StoredResponse,
    check_key,
    fingerprint,
    fingerprint_edit,
    fingerprint_params,
)
from retouch.protocol import EditRequest, ImageParams, ImageUrl, UploadedImage

LEASE = 1.0  # seconds; heartbeats every LEASE / 3. Generous: a loaded machine must not miss one
ANSWER = StoredResponse(200, {"content-type": "application/json", "x-retouch-model": "flux"}, b'{"data":[1]}')
OTHER_ANSWER = StoredResponse(200, {"content-type": "application/json"}, b'{"data":[2]}')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    url = "" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    return Settings(_env_file=None, data_dir=tmp_path, database_url=url).database


@pytest.fixture
async def database(database_url):
    database = Database(database_url)
    await database.upgrade()
    yield database
    await database.aclose()


@pytest.fixture
async def replica(database_url, database):
    """A second process's view of the same database."""
    other = Database(database_url)
    yield other
    await other.aclose()


def store_on(database: Database, **options) -> IdempotencyStore:
    options = {"lease_s": LEASE, "poll_s": 0.01, "wait_s": 10.0, **options}
    return IdempotencyStore(database, **options)


async def rows(database: Database) -> list[IdempotentRequest]:
    async with database.session() as session:
        return list((await session.execute(select(IdempotentRequest).order_by(IdempotentRequest.id))).scalars())


async def claim_later(store: IdempotencyStore, results: list, *args) -> None:
    results.append(await store.claim(*args))


def crash_after_claiming(url: str, key: str) -> None:
    """A replica that claims ``key`` and dies: all its tasks stop, nothing is completed."""

    async def run() -> None:
        database = Database(url)
        await store_on(database).claim("team", key, "fp")
        others = asyncio.all_tasks() - {asyncio.current_task()}
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        await database.aclose()

    asyncio.run(run())


# -- claims and replays ------------------------------------------------------------------


@pytest.mark.anyio
async def test_first_claim_runs_and_a_repeat_replays_the_answer(database):
    store = store_on(database)
    first = await store.claim("team", "k1", "fp")
    assert first.replay is None
    await first.complete(StoredResponse(200, {**ANSWER.headers, "Content-Length": "12", "set-cookie": "a=b"},
                                        ANSWER.body))

    again = await store.claim("team", "k1", "fp")

    assert again.replay == ANSWER  # framing and cookies are not replayed
    [row] = await rows(database)
    assert (row.state, row.status, row.body) == ("done", 200, ANSWER.body)


@pytest.mark.anyio
async def test_same_key_with_another_request_is_409_not_retryable(database):
    store = store_on(database)
    running = await store.claim("team", "k1", "fp-a")

    with pytest.raises(ConflictError) as while_running:
        await store.claim("team", "k1", "fp-b")
    await running.complete(ANSWER)
    with pytest.raises(ConflictError) as when_done:
        await store.claim("team", "k1", "fp-b")

    for error in (while_running.value, when_done.value):
        assert (error.status, error.code, error.param) == (409, "idempotency_key_reused", "Idempotency-Key")
        assert error.headers["x-should-retry"] == "false"
        assert "'k1'" in error.message and "new key" in error.message


@pytest.mark.anyio
async def test_scopes_keep_the_same_key_apart(database):
    store = store_on(database)
    ours = await store.claim("team-a", "k1", "fp-a")
    theirs = await store.claim("team-b", "k1", "fp-b")
    assert ours.replay is None and theirs.replay is None
    await ours.complete(ANSWER)
    await theirs.complete(OTHER_ANSWER)
    assert (await store.claim("team-b", "k1", "fp-b")).replay == OTHER_ANSWER


@pytest.mark.anyio
async def test_concurrent_duplicate_waits_for_the_first_answer(database):
    store = store_on(database)
    first = await store.claim("team", "k1", "fp")
    results: list = []
    async with anyio.create_task_group() as group:
        group.start_soon(claim_later, store, results, "team", "k1", "fp")
        await anyio.sleep(1.5 * LEASE)  # heartbeats: the running claim is not taken over
        assert results == []
        await first.complete(ANSWER)
    assert results[0].replay == ANSWER
    assert len(await rows(database)) == 1


@pytest.mark.anyio
async def test_release_lets_a_retry_run_again(database):
    store = store_on(database)
    failed = await store.claim("team", "k1", "fp")
    await failed.release()
    assert await rows(database) == []

    retry = await store.claim("team", "k1", "fp")

    assert retry.replay is None
    await retry.complete(ANSWER)
    await retry.release()  # an ended claim stays ended
    assert (await store.claim("team", "k1", "fp")).replay == ANSWER


@pytest.mark.anyio
async def test_waiting_duplicate_runs_itself_when_the_first_releases(database):
    store = store_on(database)
    first = await store.claim("team", "k1", "fp")
    results: list = []
    async with anyio.create_task_group() as group:
        group.start_soon(claim_later, store, results, "team", "k1", "fp")
        await anyio.sleep(0.05)
        await first.release()
    assert results[0].replay is None
    await results[0].complete(ANSWER)
    assert (await store.claim("team", "k1", "fp")).replay == ANSWER


@pytest.mark.anyio
async def test_duplicate_gives_up_with_a_retryable_409_while_the_holder_runs(database):
    store = store_on(database, wait_s=1.5 * LEASE)
    holder = await store.claim("team", "k1", "fp")

    with pytest.raises(ConflictError) as caught:
        await store.claim("team", "k1", "fp")

    assert (caught.value.code, caught.value.param) == ("idempotency_key_in_use", "Idempotency-Key")
    assert caught.value.headers["x-should-retry"] == "true"
    await holder.complete(ANSWER)  # it was never taken over: its answer is kept
    assert (await store.claim("team", "k1", "fp")).replay == ANSWER


# -- replicas and crashes ----------------------------------------------------------------


@pytest.mark.anyio
async def test_two_replicas_see_each_others_claims(database, replica):
    here, there = store_on(database), store_on(replica)
    first = await here.claim("team", "k1", "fp")
    results: list = []
    async with anyio.create_task_group() as group:
        group.start_soon(claim_later, there, results, "team", "k1", "fp")
        with pytest.raises(ConflictError, match="different request"):
            await there.claim("team", "k1", "fp-other")
        await anyio.sleep(0.05)
        await first.complete(ANSWER)
    assert results[0].replay == ANSWER


@pytest.mark.anyio
async def test_claim_of_a_crashed_replica_is_taken_over_after_the_lease(database, database_url):
    await anyio.to_thread.run_sync(crash_after_claiming, database_url, "k1")
    [orphan] = await rows(database)
    assert orphan.state == "running"
    with pytest.raises(ConflictError, match="still running"):  # too soon to call it dead
        await store_on(database, wait_s=0).claim("team", "k1", "fp")

    survivor = await store_on(database).claim("team", "k1", "fp")

    assert survivor.replay is None
    await survivor.complete(ANSWER)
    assert (await store_on(database).claim("team", "k1", "fp")).replay == ANSWER
    assert [row.id for row in await rows(database)] == [orphan.id]


@pytest.mark.anyio
async def test_only_one_of_several_replicas_takes_over_a_dead_claim(database, replica, database_url):
    await anyio.to_thread.run_sync(crash_after_claiming, database_url, "k1")
    await anyio.sleep(LEASE)
    results: list = []
    async with anyio.create_task_group() as group:
        for store in [store_on(database), store_on(replica)] * 2:
            group.start_soon(claim_later, store, results, "team", "k1", "fp")
        while not results:
            await anyio.sleep(0.01)
        await anyio.sleep(0.1)
        [winner] = results
        assert winner.replay is None
        await winner.complete(ANSWER)
    assert [claim.replay for claim in results[1:]] == [ANSWER] * 3


@pytest.mark.anyio
async def test_holder_that_was_taken_over_cannot_overwrite_the_new_answer(database, replica):
    frozen = await store_on(database).claim("team", "k1", "fp")
    async with database.session() as session:  # its heartbeats stop landing, as in a long freeze
        await session.execute(update(IdempotentRequest).values(
            heartbeat_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)))
        await session.commit()
    successor = await store_on(replica).claim("team", "k1", "fp")
    assert successor.replay is None

    await frozen.complete(OTHER_ANSWER)
    await successor.complete(ANSWER)
    await frozen.release()

    assert (await store_on(database).claim("team", "k1", "fp")).replay == ANSWER


@pytest.mark.anyio
@pytest.mark.parametrize("cancel", ["cancel_scope", "task_cancel"])
async def test_complete_finishes_even_when_the_caller_is_cancelled(database, cancel):
    store = store_on(database)
    claim = await store.claim("team", "k1", "fp")
    if cancel == "cancel_scope":
        returned = False
        with anyio.CancelScope() as scope:
            scope.cancel()
            await claim.complete(ANSWER)
            returned = True  # the write was shielded, not cut short
        assert returned
    else:
        task = asyncio.ensure_future(claim.complete(ANSWER))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    assert (await store.claim("team", "k1", "fp")).replay == ANSWER  # waits if the write is still going


# -- expiry ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_expired_answer_is_replaced_even_by_another_request(database):
    store = store_on(database, ttl_s=0)
    old = await store.claim("team", "k1", "fp-a")
    await old.complete(ANSWER)

    new = await store.claim("team", "k1", "fp-b")

    assert new.replay is None
    await new.complete(OTHER_ANSWER)
    [row] = await rows(database)
    assert (row.fingerprint, row.body) == ("fp-b", OTHER_ANSWER.body)


@pytest.mark.anyio
async def test_prune_deletes_answers_once_they_expire(database):
    store = store_on(database, ttl_s=60)
    for key in ("k1", "k2"):
        await (await store.claim("team", key, "fp")).complete(ANSWER)

    assert await store.prune_expired() == 0
    assert await store.prune_expired(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=61)) == 2
    assert await rows(database) == []
    rerun = await store.claim("team", "k1", "fp")
    assert rerun.replay is None
    await rerun.release()


@pytest.mark.anyio
async def test_prune_keeps_a_claim_whose_holder_is_alive(database):
    store = store_on(database, ttl_s=0)
    running = await store.claim("team", "k1", "fp")
    await anyio.sleep(0.01)
    assert await store.prune_expired() == 0
    await running.complete(ANSWER)
    assert await store.prune_expired() == 1


# -- keys --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", "k" * 256, "clé", "a\nb", "a\x00b", "tab\there", "del\x7f"])
def test_bad_keys_are_400_naming_the_header(value):
    with pytest.raises(InvalidRequestError) as caught:
        check_key(value)
    assert (caught.value.status, caught.value.param, caught.value.code) == (
        400, "Idempotency-Key", "invalid_idempotency_key")
    assert "Idempotency-Key" in caught.value.message and "UUID" in caught.value.message
    assert len(caught.value.message) < 400  # a huge key is not echoed whole


@pytest.mark.parametrize("value", ["k", "k" * 255, "550e8400-e29b-41d4-a716-446655440000", "a b:/=+~!"])
def test_good_keys_pass_unchanged(value):
    assert check_key(value) == value


# -- fingerprints ------------------------------------------------------------------------


def upload(data: bytes, filename: str = "a.png", param: str = "image") -> UploadedImage:
    return UploadedImage(io.BytesIO(data), filename, param)


def edit(*images, prompt: str = "grayscale", mask=None, **fields) -> EditRequest:
    return EditRequest(ImageParams(prompt=prompt, **fields), list(images), mask)


def test_fingerprint_ignores_filenames_and_part_names():
    one = edit(upload(b"pixels", "a.png", "image"), upload(b"more", "b.png", "image"))
    other = edit(upload(b"pixels", "x.jpg", "image[]"), upload(b"more", None, "image[]"))
    assert fingerprint_edit(one, "edits") == fingerprint_edit(other, "edits")


def test_fingerprint_ignores_field_order():
    one = ImageParams.model_validate({"prompt": "cat", "size": "512x512", "steps": 4, "style": "ink"})
    other = ImageParams.model_validate({"style": "ink", "steps": 4, "size": "512x512", "prompt": "cat"})
    assert fingerprint_params(one, "generations") == fingerprint_params(other, "generations")
    assert fingerprint("edits", {"a": 1, "b": 2}) == fingerprint("edits", {"b": 2, "a": 1})


def test_fingerprint_sees_what_changes_the_result():
    base = fingerprint_edit(edit(upload(b"pixels")), "edits")
    changed = [
        edit(upload(b"pixels"), prompt="sepia"),
        edit(upload(b"pixelz")),
        edit(upload(b"pixels"), n=2),
        edit(upload(b"pixels"), steps=4),
        edit(upload(b"pixels"), upload(b"mask")),
        edit(upload(b"pixels"), mask=upload(b"mask")),
        edit(ImageUrl("https://example.com/pixels", "image")),
    ]
    prints = [fingerprint_edit(request, "edits") for request in changed]
    assert len({base, *prints}) == len(changed) + 1
    assert fingerprint_edit(edit(upload(b"pixels")), "other-endpoint") != base
    assert fingerprint_edit(edit(upload(b"a"), upload(b"b")), "edits") != fingerprint_edit(
        edit(upload(b"b"), upload(b"a")), "edits")


def test_fingerprint_of_uploads_matches_their_bytes_and_leaves_the_file_where_it_was():
    first = upload(b"0123456789" * 300_000)  # bigger than one read
    first.file.seek(5)
    from_upload = fingerprint("edits", {}, [first])
    assert first.file.tell() == 5
    assert fingerprint("edits", {}, [b"0123456789" * 300_000]) == from_upload
    second = upload(b"pixels")
    fingerprint_edit(edit(second, mask=upload(b"mask")), "edits")
    assert second.file.tell() == 0 and second.file.read() == b"pixels"
