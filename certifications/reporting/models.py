"""Scheduled reports: what to email, to whom and when (`ReportSchedule`), and one row per run
(`ReportRun`), whose unique (schedule, scheduled_for) is what makes each run happen once."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from infra.database import Base, Timestamps, UTCDateTime, check_in
from tenancy.keys import tenant_fk
from tenancy.models import TenantEntity

REPORT_KINDS = ("audit-pack", "summary")
# The file each kind is sent as (docs/decisions.md, issue 20: summary is CSV only).
REPORT_FORMATS = {"audit-pack": ("pdf", "xlsx"), "summary": ("csv",)}
SCOPE_KINDS = ("location", "client", "group")
RUN_STATUSES = ("pending", "sending", "sent", "failed")
_ENABLED = text("enabled")


class ReportSchedule(TenantEntity, Timestamps, Base):
    """A report emailed on a cron schedule evaluated in the org's time zone.

    `next_run_at` is the next occurrence (UTC); the tick finds due schedules by it (one indexed
    range read over enabled schedules) and advances it when it records the run.
    """

    __tablename__ = "report_schedules"
    __table_args__ = (
        check_in("kind", REPORT_KINDS),
        check_in("format", ("pdf", "xlsx", "csv")),
        check_in("scope_kind", SCOPE_KINDS),
        Index("ix_report_schedules_org_created", "org_id", "created_at", "id"),
        Index(
            "ix_report_schedules_due",
            "next_run_at",
            postgresql_where=_ENABLED,
            sqlite_where=_ENABLED,
        ),
    )

    kind: Mapped[str] = mapped_column(String(16))
    format: Mapped[str] = mapped_column(String(8))
    # None: the whole organization (a summary only).
    scope_kind: Mapped[str | None] = mapped_column(String(16))
    scope_id: Mapped[uuid.UUID | None] = mapped_column()
    cron: Mapped[str] = mapped_column(String(100))
    recipients: Mapped[list[Any]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the last run was recorded, and how its email stands (a RUN_STATUSES value).
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_run_status: Mapped[str | None] = mapped_column(String(16))
    created_by: Mapped[str | None] = mapped_column(String(200))


class ReportRun(TenantEntity, Timestamps, Base):
    """One run of a schedule: the report of the org's day `as_of`, emailed once to every recipient.

    Claimed, sent and recorded like a notification (`pending → sending → sent`, a lease for a
    dead worker, the same `Message-ID` on a resend)."""

    __tablename__ = "report_runs"
    __table_args__ = (
        tenant_fk("schedule_id", "report_schedules", ondelete="CASCADE"),
        Index("uq_report_runs_once", "org_id", "schedule_id", "scheduled_for", unique=True),
        check_in("status", RUN_STATUSES),
    )

    schedule_id: Mapped[uuid.UUID] = mapped_column()
    # The occurrence this run honours (UTC); older missed occurrences are not run.
    scheduled_for: Mapped[datetime] = mapped_column(UTCDateTime)
    as_of: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
