"""One async engine per process, and migrations to the newest schema."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS = Path(__file__).parent / "migrations"
# Any fixed number: replicas starting together take turns migrating a PostgreSQL database.
_MIGRATION_LOCK = 724_311_905


class DatabaseError(Exception):
    """The database cannot be used; the message says why (never the password)."""


class Database:
    """The engine and a session factory for ``url`` (an SQLAlchemy async URL)."""

    def __init__(self, url: str) -> None:
        self.url = url
        # No pre-ping: it is a round trip on every checkout, a third of a key lookup. A
        # connection lost to a restart fails one request with a retryable 503
        # (api/errors.py), and the pool drops its stale connections.
        self.engine: AsyncEngine = create_async_engine(url, **_engine_options(url))
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    async def upgrade(self) -> None:
        """Bring the schema to the newest migration; safe to run from several replicas."""
        async with self._file_lock():
            async with self.engine.begin() as connection:
                await connection.run_sync(_upgrade)

    async def check(self) -> None:
        """Raise ``DatabaseError`` unless a query gets through."""
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:  # any driver's failure, said plainly
            raise DatabaseError(f"cannot reach the database at {self.safe_url}: "
                                f"{type(exc).__name__}: {exc}") from exc

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    async def aclose(self) -> None:
        await self.engine.dispose()

    @contextlib.asynccontextmanager
    async def _file_lock(self) -> AsyncIterator[None]:
        """SQLite has no advisory locks: replicas sharing its file take a lock beside it
        (waited for in a thread: another upgrade in this event loop may hold it)."""
        database = self.engine.url.database if self.engine.dialect.name == "sqlite" else None
        if not database or database == ":memory:":
            yield
            return
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        with open(f"{database}.migrate.lock", "w") as handle:
            await anyio.to_thread.run_sync(fcntl.flock, handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})"))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _engine_options(url: str) -> dict:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30}}
    return {"pool_size": 10, "max_overflow": 20}


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets readers run beside the writer; busy_timeout waits out another process's write.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
