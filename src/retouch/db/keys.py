"""Managed API keys: made once (the key is shown only then), found by digest, revoked."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import bindparam, or_, select, update

from retouch.db.engine import Database
from retouch.db.tables import ApiKey

KEY_PREFIX = "rt-"
VISIBLE_CHARS = 10  # "rt-" and 7 more: enough to tell keys apart in a list, useless to an attacker
# last_used_at is a hint for people, not an audit: written at most this often per key.
TOUCH_INTERVAL = dt.timedelta(seconds=60)
LIMITS = ("rpm", "images_per_day", "monthly_budget_usd")
UPDATABLE = frozenset({"name", "allowed_models", *LIMITS})


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class KeyRecord:
    """A key as code sees it: everything but the secret."""

    id: int
    name: str
    prefix: str
    allowed_models: tuple[str, ...] | None
    rpm: int | None
    images_per_day: int | None
    monthly_budget_usd: float | None
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None

    @classmethod
    def of(cls, row: ApiKey) -> KeyRecord:
        models = tuple(row.allowed_models) if row.allowed_models is not None else None
        return cls(row.id, row.name, row.prefix, models, row.rpm, row.images_per_day,
                   row.monthly_budget_usd, row.created_at, row.last_used_at, row.revoked_at)

    def as_dict(self) -> dict:
        when = {name: value.isoformat() if value else None for name, value in
                (("created_at", self.created_at), ("last_used_at", self.last_used_at),
                 ("revoked_at", self.revoked_at))}
        return {"id": self.id, "name": self.name, "prefix": self.prefix,
                "allowed_models": list(self.allowed_models) if self.allowed_models is not None else None,
                "rpm": self.rpm, "images_per_day": self.images_per_day,
                "monthly_budget_usd": self.monthly_budget_usd, **when}


_FIND = select(*(ApiKey.__table__.c[name] for name in (
    "id", "name", "prefix", "allowed_models", "rpm", "images_per_day", "monthly_budget_usd",
    "created_at", "last_used_at", "revoked_at"))).where(ApiKey.key_hash == bindparam("key_hash"))


class KeyStore:
    def __init__(self, database: Database) -> None:
        self.database = database

    async def create(self, name: str, *, models: list[str] | None = None, rpm: int | None = None,
                     images_per_day: int | None = None,
                     monthly_budget_usd: float | None = None) -> tuple[KeyRecord, str]:
        """A new key: its record and the secret, which is not kept anywhere."""
        _check_limits(name, rpm, images_per_day, monthly_budget_usd)
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        row = ApiKey(name=name, prefix=secret[:VISIBLE_CHARS], key_hash=digest(secret),
                     allowed_models=list(models) if models else None, rpm=rpm,
                     images_per_day=images_per_day, monthly_budget_usd=monthly_budget_usd,
                     created_at=_now())
        async with self.database.session() as session:
            session.add(row)
            await session.commit()
            return KeyRecord.of(row), secret

    async def find(self, secret: str) -> KeyRecord | None:
        """The key with this secret (revoked ones too: check ``revoked_at``), or None.
        One indexed read, on every request (so a revocation holds at once): a plain
        connection and the cached statement, not an ORM session, which costs twice the CPU."""
        async with self.database.engine.connect() as connection:
            row = (await connection.execute(_FIND, {"key_hash": digest(secret)})).first()
        return KeyRecord.of(row) if row is not None else None

    async def any_created(self) -> bool:
        """Whether any key was ever made. An open server closes for good once one exists:
        revoking the last key must not open it to everyone again."""
        async with self.database.session() as session:
            return (await session.execute(select(ApiKey.id).limit(1))).first() is not None

    async def touch(self, record: KeyRecord) -> None:
        """Note that the key was used, at most once per ``TOUCH_INTERVAL``."""
        now = _now()
        if record.last_used_at is not None and now - _aware(record.last_used_at) < TOUCH_INTERVAL:
            return
        async with self.database.session() as session:
            await session.execute(update(ApiKey).where(ApiKey.id == record.id).values(last_used_at=now))
            await session.commit()

    async def list(self, *, include_revoked: bool = True) -> list[KeyRecord]:
        async with self.database.session() as session:
            query = select(ApiKey).order_by(ApiKey.id)
            if not include_revoked:
                query = query.where(ApiKey.revoked_at.is_(None))
            return [KeyRecord.of(row) for row in (await session.execute(query)).scalars()]

    async def get(self, ref: str | int) -> KeyRecord | None:
        """A key by id or by its visible prefix."""
        async with self.database.session() as session:
            row = await _by_ref(session, ref)
            return KeyRecord.of(row) if row is not None else None

    async def update(self, ref: str | int, **changes) -> KeyRecord | None:
        """Change a key's ``name``, ``allowed_models`` or limits (``rpm``, ``images_per_day``,
        ``monthly_budget_usd``; None lifts a limit). None when no such key."""
        unknown = set(changes) - UPDATABLE
        if unknown:
            raise ValueError(f"cannot change {', '.join(sorted(unknown))}; only {', '.join(sorted(UPDATABLE))}")
        _check_limits(changes.get("name", "-"), *(changes.get(k) for k in LIMITS))
        async with self.database.session() as session:
            row = await _by_ref(session, ref)
            if row is None:
                return None
            for name, value in changes.items():
                if name == "allowed_models":
                    value = list(value) if value else None  # empty: every model
                setattr(row, name, value)
            await session.commit()
            return KeyRecord.of(row)

    async def revoke(self, ref: str | int) -> KeyRecord | None:
        """Revoke at once (every replica reads the same row); None when no such key."""
        async with self.database.session() as session:
            row = await _by_ref(session, ref)
            if row is None:
                return None
            if row.revoked_at is None:
                row.revoked_at = _now()
                await session.commit()
            return KeyRecord.of(row)


async def _by_ref(session, ref: str | int) -> ApiKey | None:
    text = str(ref)
    condition = ApiKey.prefix == text
    if text.isdigit():
        condition = or_(condition, ApiKey.id == int(text))
    rows = (await session.execute(select(ApiKey).where(condition))).scalars().all()
    return rows[0] if len(rows) == 1 else None


def _check_limits(name: str, *limits: float | None) -> None:
    if not name.strip():
        raise ValueError("a key needs a name")
    if any(limit is not None and limit < 0 for limit in limits):
        raise ValueError("limits and budgets cannot be negative")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(value: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; they were written in UTC."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
