"""Evidence tables: documents (a file's metadata; the bytes live in `storage`) and submissions."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from certifications.vocabulary import SUBMISSION_STATUSES
from infra.database import Base, Timestamps, UTCDateTime, check_in
from tenancy.keys import tenant_fk
from tenancy.models import TenantEntity

_LIVE = text("deleted_at IS NULL")
_PENDING = text("status = 'pending'")


class Document(TenantEntity, Timestamps, Base):
    """One file attached to one cycle of an assignment; deleting it keeps this row (soft)."""

    __tablename__ = "documents"
    __table_args__ = (
        tenant_fk("assignment_id", "assignments", ondelete="CASCADE"),
        tenant_fk("submission_id", "submissions", ondelete="SET NULL"),
        # The same bytes twice on one cycle are one document (the upload answers the first).
        Index(
            "uq_documents_cycle_sha256",
            "org_id",
            "assignment_id",
            "cycle",
            "sha256",
            unique=True,
            postgresql_where=_LIVE,
            sqlite_where=_LIVE,
        ),
        Index("ix_documents_assignment", "org_id", "assignment_id", "created_at"),
        Index("ix_documents_submission", "org_id", "submission_id"),
    )

    assignment_id: Mapped[uuid.UUID] = mapped_column()
    cycle: Mapped[int] = mapped_column(Integer)
    # Attached through a submission (its documents become the cycle's once it is approved).
    submission_id: Mapped[uuid.UUID | None] = mapped_column()
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    # Where the bytes are, relative to the store (`<org id>/<document id>`).
    storage_key: Mapped[str] = mapped_column(String(300))
    uploaded_by: Mapped[str | None] = mapped_column(String(200))
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_by: Mapped[str | None] = mapped_column(String(200))


class Submission(TenantEntity, Timestamps, Base):
    """A record of a cycle (dates, form answers, documents) waiting for a reviewer's decision."""

    __tablename__ = "submissions"
    __table_args__ = (
        tenant_fk("assignment_id", "assignments", ondelete="CASCADE"),
        check_in("status", SUBMISSION_STATUSES),
        # One waits at a time per assignment: a second is a 409 naming the first.
        Index(
            "uq_submissions_pending",
            "org_id",
            "assignment_id",
            unique=True,
            postgresql_where=_PENDING,
            sqlite_where=_PENDING,
        ),
        Index("ix_submissions_queue", "org_id", "status", "created_at", "id"),
    )

    assignment_id: Mapped[uuid.UUID] = mapped_column()
    # The assignment's cycle when submitted: approving records the next one (as renew does).
    cycle: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    issued_on: Mapped[date | None] = mapped_column(Date)
    effective_on: Mapped[date | None] = mapped_column(Date)
    expires_on: Mapped[date | None] = mapped_column(Date)
    answers: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    notes: Mapped[str | None] = mapped_column(Text)
    submitted_by: Mapped[str | None] = mapped_column(String(200))
    # Set when a worker submitted through /me: who the rejection notice goes to.
    submitter_employee_id: Mapped[uuid.UUID | None] = mapped_column()
    reviewed_by: Mapped[str | None] = mapped_column(String(200))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(Text)
