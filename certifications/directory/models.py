"""The directory: the subjects certifications attach to (SPEC §4)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import JSON, Boolean, Index, String, UniqueConstraint, func, text, true
from sqlalchemy.orm import Mapped, mapped_column

from infra.database import Base, Timestamps
from tenancy.keys import tenant_fk
from tenancy.models import TenantEntity


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
    role_id: Mapped[uuid.UUID | None] = mapped_column()
    user_sub: Mapped[str | None] = mapped_column(String(200))
    # Who hears of this employee's reminders as `manager` (reminder plans): an employee of the org.
    manager_id: Mapped[uuid.UUID | None] = mapped_column()


class Asset(_Subject, Base):
    __tablename__ = "assets"
    __table_args__ = (
        UniqueConstraint("org_id", "external_id"),
        Index("ix_assets_org_name", "org_id", "name", "id"),
    )

    serial_number: Mapped[str | None] = mapped_column(String(200))


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


SUBJECT_MODELS: dict[str, type[_Subject]] = {
    "employee": Employee,
    "asset": Asset,
    "client": Client,
    "location": Location,
}
