"""The database: API keys and the usage log (SQLAlchemy 2 async, Alembic migrations).

SQLite under the data directory by default, PostgreSQL through ``RETOUCH_DATABASE_URL``.
Migrations run at start (``Database.upgrade``) and with ``retouch db upgrade``.
"""

from retouch.db.engine import Database

__all__ = ["Database"]
