"""Webhook endpoints, the event outbox (batches), events, and one delivery per (endpoint, event).

Database triggers (migration 0018) write a batch in the statement that changes the data, so it
commits or rolls back with the change, set-based, whichever code path made it. A delivery round
turns batches into events (each with an increasing `seq`, which orders deliveries) and
deliveries.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Identity, Index, Integer, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from infra.database import Base, UTCDateTime, check_in, utcnow
from tenancy.keys import tenant_fk
from tenancy.models import TenantEntity
from tenancy.sealed import SealedSecret, SealedText

EVENT_TYPES = (
    "assignment.status_changed",
    "assignment.created",
    "assignment.renewed",
    "assignment.revoked",
    "assignment.deleted",
    "submission.pending",
    "submission.decided",
)
ALL_EVENTS = "*"
DELIVERY_STATUSES = ("pending", "delivered", "failed")
BATCH_KINDS = ("status", "inline")
_ENABLED = text("disabled_at IS NULL")
_PENDING = text("status = 'pending'")


class WebhookBatch(TenantEntity, Base):
    """The event outbox: what one statement's trigger emitted, in order (`seq`), until a
    delivery round turns it into events and deliveries (`certifications.webhooks.dispatch`).

    `kind` `status`: `items` lists status event ids (the events are built from those rows, so
    a recompute writes one small row per statement, not one per change); `inline`: `items`
    are the events themselves (`id`, `type`, `assignment_id`, `occurred_at`, `data`).
    """

    __tablename__ = "webhook_batches"
    __table_args__ = (
        check_in("kind", BATCH_KINDS),
        Index("ix_webhook_batches_org_seq", "org_id", "seq"),
    )

    # PostgreSQL: an identity column; SQLite: the triggers write max(seq) + 1.
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), Identity())
    kind: Mapped[str] = mapped_column(String(16))
    items: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, server_default=func.now()
    )


class WebhookEndpoint(TenantEntity, Base):
    """A URL an organization subscribed to some event types (`*` = all)."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        Index(
            "ix_webhook_endpoints_enabled",
            "org_id",
            postgresql_where=_ENABLED,
            sqlite_where=_ENABLED,
        ),
    )

    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str | None] = mapped_column(Text)
    events: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # `events` for the triggers' SQL: `*`, or `|type|type|` (matched with a substring test).
    event_filter: Mapped[str] = mapped_column(String(1000))
    secret: Mapped[SealedSecret] = mapped_column(SealedText)
    # After a rotation the old secret keeps signing (a second signature) until it expires.
    previous_secret: Mapped[SealedSecret | None] = mapped_column(SealedText)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    # Failing since (first failure after the last success), consecutive failures, when to retry.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A sender holds the endpoint while it sends a batch (one sender per endpoint: ordered).
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class WebhookEvent(TenantEntity, Base):
    """One event (stable `id` for receivers' dedupe), kept after its subject is deleted."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        check_in("type", EVENT_TYPES),
        Index("uq_webhook_events_seq", "seq", unique=True),
        Index("ix_webhook_events_org_seq", "org_id", "seq"),
    )

    # PostgreSQL: an identity column; SQLite: the triggers write max(seq) + 1 (writers are
    # serialized there).
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), Identity())
    type: Mapped[str] = mapped_column(String(40))
    assignment_id: Mapped[uuid.UUID | None] = mapped_column()
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    occurred_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, server_default=func.now()
    )


class WebhookDelivery(TenantEntity, Base):
    """An event on its way to one endpoint: status, attempts, the receiver's last answer."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        tenant_fk("endpoint_id", "webhook_endpoints", ondelete="CASCADE"),
        tenant_fk("event_id", "webhook_events", ondelete="CASCADE"),
        check_in("status", DELIVERY_STATUSES),
        Index(
            "uq_webhook_deliveries_endpoint_event", "org_id", "endpoint_id", "event_id", unique=True
        ),
        Index("ix_webhook_deliveries_endpoint_seq", "org_id", "endpoint_id", "seq"),
        Index(
            "ix_webhook_deliveries_pending",
            "org_id",
            "endpoint_id",
            "seq",
            postgresql_where=_PENDING,
            sqlite_where=_PENDING,
        ),
    )

    endpoint_id: Mapped[uuid.UUID] = mapped_column()
    event_id: Mapped[uuid.UUID] = mapped_column()
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    response_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, server_default=func.now()
    )
