"""Organizations (tenants) and the mixins every tenant-owned table uses."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from tenancy.db import Base, Timestamps, UTCDateTime, utcnow

MODULES = ("hse",)


class Organization(Timestamps, Base):
    """A tenant. Not itself tenant-scoped: auth looks it up before a tenant is set."""

    __tablename__ = "organizations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    modules: Mapped[list[Any]] = mapped_column(JSON, default=list)
    admin_emails: Mapped[list[Any]] = mapped_column(JSON, default=list)
    webhook_url: Mapped[str | None] = mapped_column(String(2000))
    webhook_secret: Mapped[str | None] = mapped_column(String(200))

    def has_module(self, module: str) -> bool:
        return module in (self.modules or [])


class TenantScoped:
    """Marks a table as tenant-owned: the session filters it and RLS guards it on PostgreSQL."""

    org_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id"), primary_key=True, sort_order=-20
    )


class TenantEntity(TenantScoped):
    """A tenant-owned row with its own UUID: table key `(org_id, id)`, ORM identity `id`.

    The composite key lets other tenant tables reference it with composite foreign keys (so a
    reference can never cross organizations) and lets the table be distributed by `org_id`.
    UUIDs are globally unique, so the ORM identity can stay the single `id`.
    """

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4, sort_order=-10)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:  # noqa: N805 - declarative API
        return {"primary_key": [cls.__table__.c.id]}  # type: ignore[attr-defined]


class OutboxMessage(Base):
    """A job requested inside a transaction, relayed to the broker only after that commit.

    A platform table: the relay reads it across organizations. Its RLS policy admits the
    current tenant's rows, or all rows only when the session declares platform context.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_created", "status", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    org_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("organizations.id"))
    actor_name: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    job_id: Mapped[uuid.UUID | None] = mapped_column()
    request_id: Mapped[str | None] = mapped_column(String(100))
    # pending -> sent -> done; sent rows not done after a while are re-sent by the sweep.
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Job(TenantEntity, Base):
    """Long work a client can poll: fan-out, bulk import, recomputation."""

    __tablename__ = "jobs"

    kind: Mapped[str] = mapped_column(String(50))
    state: Mapped[str] = mapped_column(String(16), default="queued")
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
