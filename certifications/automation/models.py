"""Automation tables: notifications (the delivery log), renewal tasks and the audit trail."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Date, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from certifications.vocabulary import (
    CHANNELS,
    DIGEST_FREQUENCIES,
    DIGEST_STATUSES,
    NOTIFICATION_STATUSES,
    TASK_STATUSES,
)
from infra.database import Base, Timestamps, UTCDateTime, check_in
from tenancy.keys import tenant_fk
from tenancy.models import TenantEntity, TenantScoped


class Notification(TenantEntity, Timestamps, Base):
    """One message to one recipient over one channel for one (assignment, rule, cycle).

    The unique key is what makes rule evaluation idempotent: reruns, retries and concurrent
    evaluators all hit `ON CONFLICT DO NOTHING` instead of creating a second row.
    """

    __tablename__ = "notifications"
    __table_args__ = (
        tenant_fk("assignment_id", "assignments", ondelete="CASCADE"),
        tenant_fk("digest_id", "digests"),
        Index(
            "uq_notifications_once",
            "org_id",
            "assignment_id",
            "rule_key",
            "cycle",
            "repetition",
            "channel",
            "recipient",
            unique=True,
        ),
        Index("ix_notifications_org_digest", "org_id", "digest_id"),
        check_in("status", NOTIFICATION_STATUSES),
        check_in("channel", CHANNELS),
        Index("ix_notifications_org_created", "org_id", "created_at", "id"),
        Index("ix_notifications_org_status", "org_id", "status"),
    )

    assignment_id: Mapped[uuid.UUID] = mapped_column()
    certification_id: Mapped[uuid.UUID] = mapped_column()
    # "before_expiry:30", "expired", "revoked", "missing": the rule's identity (see decisions).
    rule_key: Mapped[str] = mapped_column(String(64))
    trigger: Mapped[str] = mapped_column(String(32))
    cycle: Mapped[int] = mapped_column(Integer)
    # Which repetition of a repeating plan stage (0: its first reminder).
    repetition: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    channel: Mapped[str] = mapped_column(String(16))
    # An email address, or "webhook" for the org's webhook.
    recipient: Mapped[str] = mapped_column(String(320))
    # How the recipient was chosen: one of vocabulary.RECIPIENT_SOURCES.
    recipient_source: Mapped[str] = mapped_column(String(32))
    triggered_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    # What the message adds for its trigger: a rejected submission's reason.
    detail: Mapped[str | None] = mapped_column(Text)
    # smtp, log (no SMTP_HOST configured) or webhook.
    delivered_via: Mapped[str | None] = mapped_column(String(16))
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The digest that carries this reminder to a daily/weekly recipient (never queued alone).
    digest_id: Mapped[uuid.UUID | None] = mapped_column()


class Digest(TenantEntity, Timestamps, Base):
    """One email per (recipient, period) listing the reminders due to a digest recipient.

    The unique key makes collection idempotent: a second tick in the period finds the digest
    taken; the reminders are stamped with its id by one conditional UPDATE, so each reminder
    belongs to one digest and is marked sent when that digest is.
    """

    __tablename__ = "digests"
    __table_args__ = (
        Index("uq_digests_period", "org_id", "recipient", "period", unique=True),
        check_in("status", DIGEST_STATUSES),
        Index("ix_digests_org_created", "org_id", "created_at", "id"),
    )

    recipient: Mapped[str] = mapped_column(String(320))
    # "daily:2026-11-30" or "weekly:2026-11-30" (the local date it was due).
    period: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    items: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class NotificationPreference(TenantScoped, Timestamps, Base):
    """How one email address gets its reminders; absent: the org's `digest_*` settings."""

    __tablename__ = "notification_preferences"
    __table_args__ = (check_in("frequency", DIGEST_FREQUENCIES),)

    # Lower case: reminders match it ignoring case.
    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    frequency: Mapped[str] = mapped_column(String(16))
    hour: Mapped[int] = mapped_column(Integer)
    weekday: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Task(TenantEntity, Timestamps, Base):
    """A renewal task: one per (assignment, task rule, cycle), due at the expiry date."""

    __tablename__ = "tasks"
    __table_args__ = (
        tenant_fk("assignment_id", "assignments", ondelete="CASCADE"),
        tenant_fk("assignee_id", "employees"),
        Index("uq_tasks_once", "org_id", "assignment_id", "rule_key", "cycle", unique=True),
        check_in("status", TASK_STATUSES),
        Index("ix_tasks_org_due", "org_id", "due_on", "id"),
        Index("ix_tasks_org_assignee", "org_id", "assignee_id", "status"),
    )

    assignment_id: Mapped[uuid.UUID] = mapped_column()
    certification_id: Mapped[uuid.UUID] = mapped_column()
    rule_key: Mapped[str] = mapped_column(String(64))
    cycle: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16), default="renewal", server_default="renewal")
    title: Mapped[str] = mapped_column(String(500))
    assignee_id: Mapped[uuid.UUID | None] = mapped_column()
    due_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="open", server_default="open")
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_by: Mapped[str | None] = mapped_column(String(200))
    # Closed by a renewal/revocation, or cancelled by a person.
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(Text)
