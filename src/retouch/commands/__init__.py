"""Operational subcommands of ``retouch`` (keys, database, storage, doctor)."""
