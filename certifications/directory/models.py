"""The directory: the subjects certifications attach to (SPEC §4)."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    Index,
    Integer,
    String,
    UniqueConstraint,
    func,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from infra.database import Base, Timestamps
from tenancy.keys import tenant_fk
from tenancy.models import TenantEntity, TenantScoped


class Role(TenantEntity, Timestamps, Base):
    __tablename__ = "roles"
    __table_args__ = (
        # Case-insensitive, like certification names (migration 0015).
        Index("uq_roles_org_lower_name", "org_id", func.lower(text("name")), unique=True),
        UniqueConstraint("org_id", "external_id"),
    )

    name: Mapped[str] = mapped_column(String(200))
    external_id: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())


class _Subject(TenantEntity, Timestamps):
    name: Mapped[str] = mapped_column(String(200))
    external_id: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())


class Employee(_Subject, Base):
    __tablename__ = "employees"
    __table_args__ = (
        UniqueConstraint("org_id", "external_id"),
        # The identity provider's subject of the worker's own (`self`) tokens: one per org.
        Index("uq_employees_org_id_user_sub", "org_id", "user_sub", unique=True),
        tenant_fk("role_id", "roles"),
        tenant_fk("manager_id", "employees"),
        Index("ix_employees_org_role", "org_id", "role_id"),
        Index("ix_employees_org_name", "org_id", "name", "id"),
    )

    email: Mapped[str | None] = mapped_column(String(320))
    # The first of the employee's roles (`employee_roles`, position 0), kept for compatibility.
    role_id: Mapped[uuid.UUID | None] = mapped_column()
    user_sub: Mapped[str | None] = mapped_column(String(200))
    # Who hears of this employee's reminders as `manager` (reminder plans): an employee of the org.
    manager_id: Mapped[uuid.UUID | None] = mapped_column()
    role_links: Mapped[list[EmployeeRole]] = relationship(
        primaryjoin="and_(EmployeeRole.org_id == Employee.org_id, "
        "EmployeeRole.employee_id == Employee.id)",
        foreign_keys="[EmployeeRole.org_id, EmployeeRole.employee_id]",
        order_by="EmployeeRole.position",
        viewonly=True,  # lazy: the directory's list loads it for a page (`selectinload`)
    )

    @property
    def role_ids(self) -> list[uuid.UUID]:
        """Every role, first one first (a row written with only `role_id` has that one)."""
        ids = [link.role_id for link in self.role_links]
        return ids or ([self.role_id] if self.role_id is not None else [])


class EmployeeRole(TenantScoped, Base):
    """One of an employee's roles; `position` 0 is the one `employees.role_id` repeats."""

    __tablename__ = "employee_roles"
    __table_args__ = (
        tenant_fk("employee_id", "employees", ondelete="CASCADE"),
        tenant_fk("role_id", "roles"),
        Index("ix_employee_roles_role", "org_id", "role_id"),
    )

    employee_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    role_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))


class Asset(_Subject, Base):
    __tablename__ = "assets"
    __table_args__ = (
        UniqueConstraint("org_id", "external_id"),
        Index("ix_assets_org_name", "org_id", "name", "id"),
        tenant_fk("location_id", "locations"),
        tenant_fk("custodian_id", "employees"),
        Index("ix_assets_org_location", "org_id", "location_id"),
    )

    serial_number: Mapped[str | None] = mapped_column(String(200))
    # Free text ("Crane"); requirement sources match it ignoring case.
    category: Mapped[str | None] = mapped_column(String(200))
    location_id: Mapped[uuid.UUID | None] = mapped_column()
    custodian_id: Mapped[uuid.UUID | None] = mapped_column()


class Client(_Subject, Base):
    __tablename__ = "clients"
    __table_args__ = (
        UniqueConstraint("org_id", "external_id"),
        Index("ix_clients_org_name", "org_id", "name", "id"),
    )

    contact_email: Mapped[str | None] = mapped_column(String(320))


class Location(_Subject, Base):
    __tablename__ = "locations"
    __table_args__ = (
        UniqueConstraint("org_id", "external_id"),
        tenant_fk("client_id", "clients"),
        Index("ix_locations_org_client", "org_id", "client_id"),
        Index("ix_locations_org_name", "org_id", "name", "id"),
    )

    address: Mapped[str | None] = mapped_column(String(1000))
    client_id: Mapped[uuid.UUID | None] = mapped_column()
    # Employee ids (strings) who hear of the location's reminders as `location_managers`.
    manager_ids: Mapped[list[Any]] = mapped_column(JSON, default=list, server_default="[]")


class Membership(TenantEntity, Timestamps, Base):
    """An employee on a job site's roster or a client's workforce, between two dates (inclusive,
    either open). Exactly one of `location_id` / `client_id` is set."""

    __tablename__ = "memberships"
    __table_args__ = (
        tenant_fk("employee_id", "employees"),
        tenant_fk("location_id", "locations"),
        tenant_fk("client_id", "clients"),
        CheckConstraint("(location_id IS NULL) <> (client_id IS NULL)", name="one_target"),
        CheckConstraint(
            "starts_on IS NULL OR ends_on IS NULL OR starts_on <= ends_on", name="dates_ordered"
        ),
        Index("ix_memberships_location", "org_id", "location_id", "employee_id"),
        Index("ix_memberships_client", "org_id", "client_id", "employee_id"),
        Index("ix_memberships_employee", "org_id", "employee_id"),
    )

    employee_id: Mapped[uuid.UUID] = mapped_column()
    location_id: Mapped[uuid.UUID | None] = mapped_column()
    client_id: Mapped[uuid.UUID | None] = mapped_column()
    starts_on: Mapped[date | None] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)


SUBJECT_MODELS: dict[str, type[_Subject]] = {
    "employee": Employee,
    "asset": Asset,
    "client": Client,
    "location": Location,
}
