"""History tables: requirement periods, exemption periods, daily compliance snapshots.

Dates, not instants: a period starts and ends on the org's local day of the change, `ends_on`
exclusive (a period opened and closed on one day covers no day, like a change undone the same
day that today's figures never saw). A requirement period still open lives on its assignment
row (`Assignment.counted_since`, `counted_required`); `requirement_periods` holds closed ones.
"""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import Boolean, Date, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from infra.database import Base
from tenancy.keys import tenant_fk
from tenancy.models import TenantEntity

_OPEN = text("ends_on IS NULL")


class RequirementPeriod(TenantEntity, Base):
    """An assignment counted in the figures from `starts_on` until `ends_on` (exclusive), as
    required or not: a closed period. The open one is on the assignment row
    (`counted_since`, `counted_required`: a fan-out writes its rows once); open rows here are
    only those of assignments deleted before migration 0024. No foreign key to the assignment:
    an unrecorded role assignment is deleted when its role ends, and the days it was required
    stay history."""

    __tablename__ = "requirement_periods"
    __table_args__ = (
        tenant_fk("certification_id", "certifications", ondelete="CASCADE"),
        Index("ix_requirement_periods_assignment", "org_id", "assignment_id", "starts_on"),
        Index("ix_requirement_periods_subject", "org_id", "subject_id", "certification_id"),
    )

    assignment_id: Mapped[uuid.UUID] = mapped_column()
    certification_id: Mapped[uuid.UUID] = mapped_column()
    subject_type: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[uuid.UUID] = mapped_column()
    required: Mapped[bool] = mapped_column(Boolean)
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)


class ExemptionPeriod(TenantEntity, Base):
    """An assignment exempt from `starts_on` until `ends_on` (exclusive; open while exempt)."""

    __tablename__ = "exemption_periods"
    __table_args__ = (
        tenant_fk("assignment_id", "assignments", ondelete="CASCADE"),
        Index(
            "uq_exemption_periods_open",
            "org_id",
            "assignment_id",
            unique=True,
            postgresql_where=_OPEN,
            sqlite_where=_OPEN,
        ),
        Index("ix_exemption_periods_assignment", "org_id", "assignment_id", "starts_on"),
    )

    assignment_id: Mapped[uuid.UUID] = mapped_column()
    reason: Mapped[str | None] = mapped_column(Text)
    until: Mapped[date | None] = mapped_column(Date)
    exempt_by: Mapped[str | None] = mapped_column(String(200))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)


class ComplianceSnapshot(TenantEntity, Base):
    """One certification's counts on one day (the org's tick writes today's; backfill the past)."""

    __tablename__ = "compliance_snapshots"
    __table_args__ = (
        tenant_fk("certification_id", "certifications", ondelete="CASCADE"),
        Index("uq_compliance_snapshots_day", "org_id", "certification_id", "day", unique=True),
        Index("ix_compliance_snapshots_org_day", "org_id", "day"),
    )

    certification_id: Mapped[uuid.UUID] = mapped_column()
    day: Mapped[date] = mapped_column(Date)
    valid: Mapped[int] = mapped_column(Integer, default=0)
    upcoming: Mapped[int] = mapped_column(Integer, default=0)
    missing: Mapped[int] = mapped_column(Integer, default=0)
    expires_soon: Mapped[int] = mapped_column(Integer, default=0)
    expired: Mapped[int] = mapped_column(Integer, default=0)
    revoked: Mapped[int] = mapped_column(Integer, default=0)
    exempt: Mapped[int] = mapped_column(Integer, default=0)
    required: Mapped[int] = mapped_column(Integer, default=0)
    compliant: Mapped[int] = mapped_column(Integer, default=0)
