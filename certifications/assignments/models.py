"""Assignments (certification records of one subject), their cycles, status events and forms."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Index,
    Integer,
    String,
    Text,
    false,
    func,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from certifications.vocabulary import ASSIGNMENT_SOURCES, STATUSES, SUBJECT_KINDS
from infra.database import Base, Timestamps, UTCDateTime, check_in, utcnow
from tenancy.keys import tenant_fk
from tenancy.models import TenantEntity, TenantScoped

_LIVE = text("revoked_at IS NULL")


class Assignment(TenantEntity, Timestamps, Base):
    __tablename__ = "assignments"
    __table_args__ = (
        tenant_fk("certification_id", "certifications"),
        check_in("subject_type", SUBJECT_KINDS),
        check_in("source", ASSIGNMENT_SOURCES),
        check_in("status", STATUSES),
        # One live (not revoked) assignment per certification and subject.
        Index(
            "uq_assignments_live",
            "org_id",
            "certification_id",
            "subject_id",
            unique=True,
            postgresql_where=_LIVE,
            sqlite_where=_LIVE,
        ),
        # certification_id last: the views' "latest cycle of this certification" probe is exact.
        Index("ix_assignments_subject", "org_id", "subject_type", "subject_id", "certification_id"),
        Index("ix_assignments_cert_status", "org_id", "certification_id", "status"),
        Index("ix_assignments_org_status", "org_id", "status"),
        Index("ix_assignments_org_expires", "org_id", "expires_on"),
    )

    certification_id: Mapped[uuid.UUID] = mapped_column()
    subject_type: Mapped[str] = mapped_column(String(16))
    # Polymorphic: validated against the subject's table by the service, inside the tenant.
    subject_id: Mapped[uuid.UUID] = mapped_column()
    source: Mapped[str] = mapped_column(String(16), default="manual", server_default="manual")
    # False once a role-sourced, recorded assignment's role no longer applies (kept as history).
    required: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    cycle: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    issued_on: Mapped[date | None] = mapped_column(Date)
    effective_on: Mapped[date | None] = mapped_column(Date)
    expires_on: Mapped[date | None] = mapped_column(Date)
    # True when `expires_on` was given explicitly; false = computed from `validity`, so a change
    # of the certification's validity recomputes it
    # (certifications.assignments.recompute.refresh_expiries).
    expires_explicit: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    notes: Mapped[str | None] = mapped_column(Text)
    form_accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="missing", server_default="missing")
    status_changed_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, server_default=func.now()
    )
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(Text)
    revoked_by: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[str | None] = mapped_column(String(200))
    # Reminders paused until this date (`POST /assignments/{id}/snooze`); the status is not.
    snoozed_until: Mapped[date | None] = mapped_column(Date)
    snooze_reason: Mapped[str | None] = mapped_column(Text)
    snoozed_by: Mapped[str | None] = mapped_column(String(200))
    snoozed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Who recorded the current cycle: the creator for cycle 1, the renewer after a renewal.
    cycle_recorded_by: Mapped[str | None] = mapped_column(String(200))
    # An exemption (set when `exempt_at` is): outside compliance, no reminders or tasks, until
    # `exempt_until` (inclusive; null = until lifted). See `assignments.exemptions`.
    exempt_reason: Mapped[str | None] = mapped_column(Text)
    exempt_until: Mapped[date | None] = mapped_column(Date)
    exempt_by: Mapped[str | None] = mapped_column(String(200))
    exempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The open requirement period (certifications.history.periods): since which org-local day
    # this row has counted in the figures with `counted_required`; null while it does not count
    # (a revoked row superseded by a later one). Closed periods are `requirement_periods` rows.
    counted_since: Mapped[date | None] = mapped_column(Date)
    counted_required: Mapped[bool | None] = mapped_column(Boolean)

    @property
    def exemption(self) -> dict[str, Any] | None:
        """The API's `exemption` object, or None when not exempt."""
        if self.exempt_at is None:
            return None
        return {
            "reason": self.exempt_reason,
            "until": self.exempt_until,
            "by": self.exempt_by,
            "at": self.exempt_at,
        }

    @property
    def snooze(self) -> dict[str, Any] | None:
        """The API's `snooze` object while reminders are paused, or None."""
        if self.snoozed_until is None:
            return None
        return {
            "until": self.snoozed_until,
            "reason": self.snooze_reason,
            "by": self.snoozed_by,
            "at": self.snoozed_at,
        }

    # The submission waiting for review, if one does (certifications.evidence.submissions).
    pending_submission_id: Mapped[uuid.UUID | None] = mapped_column()
    # The assignment of an equivalent certification (`satisfied_by`) of the same subject whose
    # record gives this one its status; null when its own record does. Written with `status`
    # by the same statements (`assignments.equivalence`); no foreign key: every write that
    # removes or changes a provider recomputes its dependents in the same transaction.
    satisfied_via_id: Mapped[uuid.UUID | None] = mapped_column()
    # The API's `satisfied_via` object, set on the records a response shows
    # (`reporting.names.attach_names`); not a column.
    satisfied_via: ClassVar[dict[str, Any] | None] = None


class AssignmentCycle(TenantEntity, Base):
    """One recorded cycle (issue → expiry) of an assignment; renewing closes the current one."""

    __tablename__ = "assignment_cycles"
    __table_args__ = (
        tenant_fk("assignment_id", "assignments", ondelete="CASCADE"),
        # A cycle is closed once: two rows for one cycle would be a lost renewal (migration 0009).
        Index(
            "uq_assignment_cycles_assignment_cycle", "org_id", "assignment_id", "cycle", unique=True
        ),
    )

    assignment_id: Mapped[uuid.UUID] = mapped_column()
    cycle: Mapped[int] = mapped_column(Integer)
    issued_on: Mapped[date | None] = mapped_column(Date)
    effective_on: Mapped[date | None] = mapped_column(Date)
    expires_on: Mapped[date | None] = mapped_column(Date)
    notes: Mapped[str | None] = mapped_column(Text)
    recorded_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, server_default=func.now()
    )
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class StatusEvent(TenantEntity, Base):
    """Every change of an assignment's stored status: the source of notifications and audit."""

    __tablename__ = "status_events"
    __table_args__ = (
        tenant_fk("assignment_id", "assignments", ondelete="CASCADE"),
        Index("ix_status_events_assignment", "org_id", "assignment_id", "created_at"),
        Index("ix_status_events_org_created", "org_id", "created_at"),
    )

    assignment_id: Mapped[uuid.UUID] = mapped_column()
    cycle: Mapped[int] = mapped_column(Integer, default=1)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    on_date: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, server_default=func.now()
    )


class FormSubmission(TenantEntity, Base):
    __tablename__ = "form_submissions"
    __table_args__ = (
        tenant_fk("assignment_id", "assignments", ondelete="CASCADE"),
        Index("ix_form_submissions_assignment", "org_id", "assignment_id"),
    )

    assignment_id: Mapped[uuid.UUID] = mapped_column()
    cycle: Mapped[int] = mapped_column(Integer, default=1)
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="accepted")
    submitted_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, server_default=func.now()
    )


class AssignmentCount(TenantScoped, Base):
    """How many current assignments of a certification have this status, requirement, exemption,
    subject activity and revocation: the compliance figures read these few rows, not the
    assignments.

    Maintained by database triggers (migration 0021) in the transaction that changes an
    assignment or a subject's `active` flag, whatever code path does it; "current" is the live
    assignment of a (certification, subject), or its latest revoked one when none is live
    (`reporting.subjects.current_assignment`). `certs counts verify` recomputes them from the
    assignments, `certs counts rebuild` rewrites them (`reporting.counts`). On PostgreSQL the
    triggers' counting is serialized by advisory locks (the migration's "Concurrency").
    """

    __tablename__ = "assignment_counts"
    __table_args__ = (tenant_fk("certification_id", "certifications", ondelete="CASCADE"),)

    certification_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    required: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    exempt: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    active: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    revoked: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
