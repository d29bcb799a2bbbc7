"""Alembic environment: run by ``Database.upgrade`` with a connection already open."""

from alembic import context

from retouch.db.tables import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
