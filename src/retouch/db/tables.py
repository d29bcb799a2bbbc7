"""The tables. Changing one means a new migration in ``migrations/versions``."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class ApiKey(Base):
    """A managed API key. Only its SHA-256 digest is kept; ``prefix`` is shown to people."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    allowed_models: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)  # None: all
    rpm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    images_per_day: Mapped[int | None] = mapped_column(Integer, nullable=True)
    monthly_budget_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Usage(Base):
    """One row per request, whatever its outcome."""

    __tablename__ = "usage"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"), nullable=True, index=True)
    key_label: Mapped[str] = mapped_column(String(64))  # static keys and anonymous callers too
    endpoint: Mapped[str] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)  # asked for
    served_by: Mapped[str | None] = mapped_column(String(200), nullable=True)  # answered
    n: Mapped[int] = mapped_column(Integer, default=0)
    images_out: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[int] = mapped_column(Integer)
    error_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    latency_ms: Mapped[float] = mapped_column(Float)
    upstream_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    bytes_in: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_out: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)

    # Quotas sum one key's images and spend over a period.
    __table_args__ = (Index("ix_usage_key_id_created_at", "key_id", "created_at"),)


class IdempotentRequest(Base):
    """A request made with an ``Idempotency-Key``: claimed while it runs (``state``
    ``running``, ``heartbeat_at`` renewed by its holder), then its answer, kept until
    ``expires_at`` so that a repeat gets the same answer without running again."""

    __tablename__ = "idempotent_requests"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    scope: Mapped[str] = mapped_column(String(64))  # whose key: the caller's label
    key: Mapped[str] = mapped_column(String(255))  # the client's Idempotency-Key
    fingerprint: Mapped[str] = mapped_column(String(64))  # SHA-256 of the request's content
    state: Mapped[str] = mapped_column(String(16))  # running | done
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    headers: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)

    __table_args__ = (UniqueConstraint("scope", "key", name="uq_idempotent_requests_scope_key"),)
