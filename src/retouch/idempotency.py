"""``Idempotency-Key``: a retried request gets the first one's answer instead of a second run.

A request with a key claims it: one row in ``idempotent_requests`` (state ``running``),
inserted under a unique (scope, key) constraint, so exactly one request in any replica
wins. The winner runs, then ``complete`` stores its answer (state ``done``) until
``expires_at``; a repeat with the same fingerprint gets that answer back, a repeat with
another fingerprint is a 409. A duplicate that arrives while the first still runs polls
until the answer is there.

The holder renews ``heartbeat_at`` every ``lease_s / 3``; a claim not renewed for
``lease_s`` belongs to a process that died, and the next request takes it over. The
holder's last ``heartbeat_at`` doubles as its fencing token: every write it makes is
conditional on that value, so a holder that was taken over (a frozen process come back)
cannot overwrite or delete the new holder's row. Staleness is judged on the wall clock,
so replicas' clocks must agree to well within ``lease_s``.

Fingerprints hash the *parsed* request (fields and image bytes), never the raw body:
multipart boundaries and filenames change between retries of the same request.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import anyio
from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from retouch.db.engine import Database
from retouch.db.tables import IdempotentRequest
from retouch.errors import ConflictError, InvalidRequestError
from retouch.protocol import EditRequest, ImageParams, ImageUrl, UploadedImage

log = logging.getLogger("retouch.idempotency")

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
_CHUNK = 1 << 20
_TICK = dt.timedelta(microseconds=1)


def check_key(value: str) -> str:
    """``value`` if it is a usable key (1 to 255 printable ASCII characters), else 400."""
    if 1 <= len(value) <= MAX_KEY_LENGTH and all(" " <= char <= "~" for char in value):
        return value
    shown = f"{value[:40]!r}{'…' if len(value) > 40 else ''}"
    raise InvalidRequestError(
        f"{HEADER} {shown} ({len(value)} characters) is not valid: it must be 1 to "
        f"{MAX_KEY_LENGTH} printable ASCII characters (no control characters, no accents). "
        "Send a fresh random string, such as a UUID, for each distinct request.",
        param=HEADER, code="invalid_idempotency_key")


# -- what is stored ----------------------------------------------------------------------


@dataclass(frozen=True)
class StoredResponse:
    """An answer as replayed: status, the headers worth replaying, and the body."""

    status: int
    headers: dict[str, str]
    body: bytes


def replayable_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers a replay should carry (lower-cased): ``content-type`` and ``x-retouch-*``.
    Framing (``content-length``), cookies and dates are the new response's own."""
    return {name.lower(): value for name, value in headers.items()
            if name.lower() == "content-type" or name.lower().startswith("x-retouch-")}


# -- fingerprints ------------------------------------------------------------------------


def fingerprint(endpoint: str, fields: Mapping[str, object],
                images: Sequence[bytes | str | UploadedImage | ImageUrl] = ()) -> str:
    """SHA-256 (hex) of a parsed request: the endpoint, its fields (order does not matter),
    and its images in order (bytes and uploads by content, strings and ``ImageUrl`` by URL).
    Filenames and part names are left out: they do not change the result."""
    canonical = {"endpoint": endpoint, "fields": dict(fields), "images": [_token(image) for image in images]}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fingerprint_params(params: ImageParams, endpoint: str) -> str:
    """The fingerprint of a request without images (a generation)."""
    return fingerprint(endpoint, params.model_dump(mode="json"))


def fingerprint_edit(edit: EditRequest, endpoint: str) -> str:
    """The fingerprint of an edit: its fields, its images in order, and its mask. Uploads
    are read from the start and left where they were."""
    fields = {**edit.params.model_dump(mode="json"), "mask": _token(edit.mask) if edit.mask else None}
    return fingerprint(endpoint, fields, edit.images)


def _token(image: bytes | str | UploadedImage | ImageUrl) -> str:
    if isinstance(image, UploadedImage):
        return "bytes:" + _file_digest(image.file)
    if isinstance(image, ImageUrl):
        image = image.url
    if isinstance(image, str):
        return "url:" + hashlib.sha256(image.encode("utf-8")).hexdigest()
    return "bytes:" + hashlib.sha256(image).hexdigest()


def _file_digest(file) -> str:
    position = file.tell()
    digest = hashlib.sha256()
    try:
        file.seek(0)
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    finally:
        file.seek(position)
    return digest.hexdigest()


# -- claims ------------------------------------------------------------------------------


class IdempotencyStore:
    """Claims and answers for idempotency keys, shared by every replica on ``database``.

    ``ttl_s``: how long an answer is replayed. ``lease_s``: how long a claim survives its
    holder's silence. ``poll_s``: how often a duplicate looks for the answer. ``wait_s``:
    how long it looks before giving up with a retryable 409.
    """

    def __init__(self, database: Database, *, ttl_s: float = 86400, lease_s: float = 30.0,
                 poll_s: float = 0.05, wait_s: float = 600.0) -> None:
        self.database = database
        self.ttl = dt.timedelta(seconds=ttl_s)
        self.lease = dt.timedelta(seconds=lease_s)
        self.poll_s = poll_s
        self.wait_s = wait_s
        self._endings: set[asyncio.Task] = set()  # complete/release writes outliving a cancelled caller

    async def claim(self, scope: str, key: str, fingerprint: str) -> Claim:
        """Either this request holds ``key`` now (``claim.replay is None``: run it, then
        ``claim.complete(...)`` or ``claim.release()``; one of them must be called), or
        the stored answer (``claim.replay``).

        Waits while another request (any replica) holds the key, and takes over a claim
        whose holder stopped renewing it for ``lease_s``, or an answer past its expiry
        (whatever their fingerprint: neither has an answer to protect any more).
        Raises ``ConflictError`` ``idempotency_key_reused`` (not retryable) when the key
        was used with another fingerprint, and ``idempotency_key_in_use`` (retryable)
        when the holder still runs after ``wait_s``.
        """
        deadline = anyio.current_time() + self.wait_s
        while True:
            if (held := await self._insert(scope, key, fingerprint)) is not None:
                return Claim(self, *held)
            # Polls only read: a failed insert is an error in PostgreSQL's log.
            while (row := await self._read(scope, key)) is not None:
                if (claim := await self._settle(row, key, fingerprint)) is not None:
                    return claim
                if anyio.current_time() >= deadline:
                    raise _in_use(key, self.wait_s)
                await anyio.sleep(self.poll_s)

    async def prune_expired(self, now: dt.datetime | None = None) -> int:
        """Delete answers past ``expires_at`` and dead claims past it; the number deleted.
        A claim still renewed by its holder stays, however old."""
        now = now or _now()
        condition = or_(IdempotentRequest.state == "done", IdempotentRequest.heartbeat_at < now - self.lease)
        async with self.database.session() as session:
            statement = delete(IdempotentRequest).where(IdempotentRequest.expires_at < now, condition)
            result = await session.execute(statement.execution_options(synchronize_session=False))
            await session.commit()
            return result.rowcount

    async def _settle(self, row: IdempotentRequest, key: str, fingerprint: str) -> Claim | None:
        """The key taken over, its answer, or None while another request holds it."""
        if self._replaceable(row):
            held = await self._take_over(row, fingerprint)
            return Claim(self, *held) if held else None
        if row.fingerprint != fingerprint:
            raise _reused(key)
        if row.state == "done":
            return Claim(self, replay=StoredResponse(row.status, dict(row.headers or {}), row.body or b""))
        return None

    def _replaceable(self, row: IdempotentRequest) -> bool:
        now = _now()
        if row.state == "done":
            return _aware(row.expires_at) <= now
        return now - _aware(row.heartbeat_at) > self.lease

    async def _insert(self, scope: str, key: str, fingerprint: str) -> tuple[int, dt.datetime] | None:
        now = _now()
        row = IdempotentRequest(scope=scope, key=key, fingerprint=fingerprint, state="running",
                                created_at=now, heartbeat_at=now, expires_at=now + self.ttl)
        try:
            async with self.database.session() as session:
                session.add(row)
                await session.commit()
        except IntegrityError:  # someone holds (scope, key) already
            return None
        return row.id, now

    async def _read(self, scope: str, key: str) -> IdempotentRequest | None:
        query = select(IdempotentRequest).where(IdempotentRequest.scope == scope, IdempotentRequest.key == key)
        async with self.database.session() as session:
            return (await session.execute(query)).scalar_one_or_none()

    async def _take_over(self, row: IdempotentRequest, fingerprint: str) -> tuple[int, dt.datetime] | None:
        """Make ``row`` ours if nobody changed it since it was read (two waiters: one wins)."""
        now = _now()
        token = _next_token(now, row.heartbeat_at)
        taken = await self._write_held(row.id, row.heartbeat_at, row.state, fingerprint=fingerprint,
                                       state="running", status=None, headers=None, body=None,
                                       created_at=now, heartbeat_at=token, expires_at=now + self.ttl)
        return (row.id, token) if taken else None

    async def _write_held(self, row_id: int, token: dt.datetime, held_state: str = "running",
                          **values) -> bool:
        """Update the row if it is still as its holder left it (``heartbeat_at == token``);
        with no values, delete it. Whether it was."""
        held = (IdempotentRequest.id == row_id, IdempotentRequest.heartbeat_at == token,
                IdempotentRequest.state == held_state)
        statement = (update(IdempotentRequest).where(*held).values(**values) if values
                     else delete(IdempotentRequest).where(*held))
        async with self.database.session() as session:
            result = await session.execute(statement.execution_options(synchronize_session=False))
            await session.commit()
            return result.rowcount == 1


class Claim:
    """The outcome of ``IdempotencyStore.claim``: a replay, or a held key to end once."""

    def __init__(self, store: IdempotencyStore, row_id: int | None = None, token: dt.datetime | None = None,
                 *, replay: StoredResponse | None = None) -> None:
        self.replay = replay
        self._store = store
        self._row_id = row_id
        self._token = token
        self._stopping = asyncio.Event()
        self._heartbeat: asyncio.Task | None = None
        if replay is None:
            self._heartbeat = asyncio.get_running_loop().create_task(self._renew_until_stopped())

    async def complete(self, response: StoredResponse) -> None:
        """Store ``response`` (its replayable headers only) as the key's answer for ``ttl_s``,
        and stop renewing the claim. Does nothing on a replay or a claim already ended."""
        now = _now()
        await self._end(status=response.status, headers=replayable_headers(response.headers),
                        body=response.body, state="done", heartbeat_at=_next_token(now, self._token),
                        expires_at=now + self._store.ttl)

    async def release(self) -> None:
        """Forget the claim (its row is deleted), so that a retry runs again; for failures
        worth retrying. Does nothing on a replay or a claim already ended."""
        await self._end()

    async def _end(self, **values) -> None:
        if self._heartbeat is None:
            return
        heartbeat, self._heartbeat = self._heartbeat, None
        self._stopping.set()
        # Run to the end even when the caller is cancelled (anyio scope or Task.cancel()):
        # a claim left running would make every retry wait for lease_s.
        ending = asyncio.ensure_future(self._write_after(heartbeat, values))
        self._store._endings.add(ending)
        ending.add_done_callback(self._store._endings.discard)
        with anyio.CancelScope(shield=True):
            await asyncio.shield(ending)

    async def _write_after(self, heartbeat: asyncio.Task, values: dict) -> None:
        await heartbeat  # never cancelled mid-write, so self._token is the row's heartbeat_at
        if not await self._store._write_held(self._row_id, self._token, **values):
            log.warning("idempotency claim %s was taken over by another request; its answer is not kept",
                        self._row_id)

    async def _renew_until_stopped(self) -> None:
        interval = self._store.lease.total_seconds() / 3
        while not await _wait(self._stopping, interval):
            token = _next_token(_now(), self._token)
            try:
                renewed = await self._store._write_held(self._row_id, self._token, heartbeat_at=token)
            except Exception:  # the database is away for a moment: try again next tick
                log.exception("could not renew idempotency claim %s", self._row_id)
                continue
            if not renewed:
                log.warning("idempotency claim %s was taken over by another request", self._row_id)
                return
            self._token = token


async def _wait(event: asyncio.Event, timeout: float) -> bool:
    """Whether ``event`` was set within ``timeout`` seconds."""
    with anyio.move_on_after(timeout):
        await event.wait()
    return event.is_set()


def _reused(key: str) -> ConflictError:
    return ConflictError(
        f"{HEADER} {key!r} was already used for a different request (another endpoint, other "
        "fields or other images). Reuse a key only to retry the very same request; send a new "
        "key for a new request.",
        param=HEADER, code="idempotency_key_reused", headers={"x-should-retry": "false"})


def _in_use(key: str, wait_s: float) -> ConflictError:
    return ConflictError(
        f"the request with {HEADER} {key!r} is still running after {wait_s:g} s of waiting for it. "
        "Retry later with the same key to receive its answer.",
        param=HEADER, code="idempotency_key_in_use", headers={"x-should-retry": "true", "retry-after": "1"})


def _next_token(now: dt.datetime, previous: dt.datetime | None) -> dt.datetime:
    """``now``, nudged so that it never equals the token it replaces."""
    return now + _TICK if previous is not None and _aware(previous) == now else now


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(value: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; they were written in UTC."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
