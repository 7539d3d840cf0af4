"""The state store's tables: one row per (wave, host), an append-only event history, and a key/value table."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import JSON, DateTime, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tasks.rules.host_state import Status


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive, PostgreSQL in its session's TimeZone; everything here is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    if value is not None and value.utcoffset() != timedelta(0):
        return value.astimezone(timezone.utc)
    return value


class _Base(DeclarativeBase):
    pass


class _Meta(_Base):
    __tablename__ = "amtmig_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class _HostRow(_Base):
    __tablename__ = "amtmig_hosts"
    __table_args__ = (UniqueConstraint("wave", "host"), Index("ix_hosts_wave_status", "wave", "status"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    wave: Mapped[str] = mapped_column(String(128))
    host: Mapped[str] = mapped_column(String(253))
    address: Mapped[str] = mapped_column(String(253), default="")
    status: Mapped[str] = mapped_column(String(32), default=Status.PENDING.value)
    cause: Mapped[str | None] = mapped_column(String(32), nullable=True)
    provisioned_in_pass: Mapped[int | None] = mapped_column(Integer, nullable=True)
    window_closes_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    evidence: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    next_step: Mapped[str | None] = mapped_column(String(256), nullable=True)
    last_stage: Mapped[str | None] = mapped_column(String(32), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class _EventRow(_Base):
    __tablename__ = "amtmig_events"
    __table_args__ = (Index("ix_events_host", "host"), Index("ix_events_wave", "wave"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    wave: Mapped[str] = mapped_column(String(128))
    host: Mapped[str] = mapped_column(String(253))
    stage: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(32))
    cause: Mapped[str | None] = mapped_column(String(32), nullable=True)
    status_before: Mapped[str | None] = mapped_column(String(32), nullable=True)
    status_after: Mapped[str | None] = mapped_column(String(32), nullable=True)
    evidence: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    flow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
