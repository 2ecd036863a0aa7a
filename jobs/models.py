"""Background work, in the database: the outbox of requested jobs and the state clients poll."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from infra.database import Base, UTCDateTime, utcnow
from tenancy.models import TenantEntity


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
    # pending -> sent -> done | failed -> (sent again by the sweep, with backoff) ... -> dead.
    # See `jobs.relay` for what the sweep re-sends and when.
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set while a worker runs the message, renewed by its heartbeat (workers/lease.py); a
    # `sent` row whose lease ran out lost its worker.
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The Dramatiq message id of the delivery holding the lease (its own retries may re-claim).
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    # Which broker life the message was published into (`jobs.broker.broker_epoch`): a Redis
    # that lost its data since has a new epoch, so the message is known lost.
    broker_epoch: Mapped[str | None] = mapped_column(String(64))
    # How many times Dramatiq gave up on it (its own retries exhausted), since when, and when
    # the sweep sends it again.
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    first_failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


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
