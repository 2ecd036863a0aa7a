"""The certification catalog: nested groups and certification definitions (SPEC §4)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    false,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from certifications.vocabulary import CERTIFICATION_TYPES
from infra.database import Base, Timestamps, UTCDateTime, check_in
from tenancy.keys import tenant_fk
from tenancy.models import TenantEntity, TenantScoped


class CertificationGroup(TenantEntity, Timestamps, Base):
    __tablename__ = "certification_groups"
    __table_args__ = (
        tenant_fk("parent_id", "certification_groups"),
        Index("ix_certification_groups_org_parent", "org_id", "parent_id"),
        # Sibling names are unique ignoring case; roots (parent NULL) get their own partial
        # index since NULLs never collide in a unique index (migration 0015).
        Index(
            "uq_certification_groups_sibling_name",
            "org_id",
            "parent_id",
            func.lower(text("name")),
            unique=True,
            postgresql_where=text("parent_id IS NOT NULL"),
            sqlite_where=text("parent_id IS NOT NULL"),
        ),
        Index(
            "uq_certification_groups_root_name",
            "org_id",
            func.lower(text("name")),
            unique=True,
            postgresql_where=text("parent_id IS NULL"),
            sqlite_where=text("parent_id IS NULL"),
        ),
    )

    name: Mapped[str] = mapped_column(String(200))
    parent_id: Mapped[uuid.UUID | None] = mapped_column()


class Certification(TenantEntity, Timestamps, Base):
    __tablename__ = "certifications"
    __table_args__ = (
        check_in("type", CERTIFICATION_TYPES),
        CheckConstraint("cost IS NULL OR cost >= 0", name="cost_not_negative"),
        CheckConstraint("warning_days >= 0", name="warning_days_not_negative"),
        Index("uq_certifications_org_lower_name", "org_id", func.lower("name"), unique=True),
        tenant_fk("task_assignee_id", "employees"),
    )

    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16))
    issuer: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    cost: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    # `validity` is {"months": n} or {"days": n} in the API; null = never expires.
    validity_months: Mapped[int | None] = mapped_column(Integer)
    validity_days: Mapped[int | None] = mapped_column(Integer)
    warning_days: Mapped[int] = mapped_column(Integer, default=30, server_default=text("30"))
    valid_when_added: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    forms_required: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Submissions wait for a reviewer (forms_required implies it: `needs_review`).
    review_required: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    form: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    notification_rules: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # {"stages": [...], "stop_when": ...} (certifications.automation.plans); NULL: the plan is
    # the one `notification_rules` make (rows written before the plan existed, or by hand).
    reminder_plan: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    task_rules: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # Who gets the renewal tasks of this certification's non-employee subjects (overrides the
    # organization's `default_task_assignee_id`).
    task_assignee_id: Mapped[uuid.UUID | None] = mapped_column()
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Every client (client certifications) or every location (location ones) must hold it.
    applies_to_all: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    @property
    def needs_review(self) -> bool:
        """Submissions wait for a reviewer: asked for, or implied by a required form."""
        return bool(self.review_required or self.forms_required)


class CertificationGroupMember(TenantScoped, Base):
    __tablename__ = "certification_group_members"
    __table_args__ = (
        tenant_fk("certification_id", "certifications", ondelete="CASCADE"),
        tenant_fk("group_id", "certification_groups"),
        Index("ix_certification_group_members_group", "org_id", "group_id"),
    )

    certification_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    group_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)


class CertificationRole(TenantScoped, Base):
    __tablename__ = "certification_roles"
    __table_args__ = (
        tenant_fk("certification_id", "certifications", ondelete="CASCADE"),
        tenant_fk("role_id", "roles"),
        Index("ix_certification_roles_role", "org_id", "role_id"),
    )

    certification_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    role_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)


class CertificationClient(TenantScoped, Base):
    __tablename__ = "certification_clients"
    __table_args__ = (
        tenant_fk("certification_id", "certifications", ondelete="CASCADE"),
        tenant_fk("client_id", "clients"),
    )

    certification_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    client_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)


class CertificationEquivalence(TenantScoped, Base):
    """`satisfied_by`: a record of `provider_id` satisfies `certification_id` for the same
    subject (OSHA 10 is satisfied by OSHA 30). One level, never transitive; no cycles
    (`certifications.catalog.equivalences`)."""

    __tablename__ = "certification_equivalences"
    __table_args__ = (
        tenant_fk("certification_id", "certifications", ondelete="CASCADE"),
        tenant_fk("provider_id", "certifications", ondelete="CASCADE"),
        Index("ix_certification_equivalences_provider", "org_id", "provider_id"),
    )

    certification_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    provider_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)


class CertificationLocation(TenantScoped, Base):
    """A job site requiring the certification of its roster (employee), its assets (asset), or
    of itself (location)."""

    __tablename__ = "certification_locations"
    __table_args__ = (
        tenant_fk("certification_id", "certifications", ondelete="CASCADE"),
        tenant_fk("location_id", "locations"),
        Index("ix_certification_locations_location", "org_id", "location_id"),
    )

    certification_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    location_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)


class CertificationCategory(TenantScoped, Base):
    """An asset category (stored lower-case) whose active assets must hold the certification."""

    __tablename__ = "certification_categories"
    __table_args__ = (tenant_fk("certification_id", "certifications", ondelete="CASCADE"),)

    certification_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    category: Mapped[str] = mapped_column(String(200), primary_key=True)
