"""Organizations (tenants) and the mixins every tenant-owned table uses."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Integer, LargeBinary, String, Table, false
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from infra.database import Base, Timestamps
from tenancy.sealed import SealedSecret, SealedText

MODULES = ("hse",)


class Organization(Timestamps, Base):
    """A tenant. Not itself tenant-scoped: auth looks it up before a tenant is set."""

    __tablename__ = "organizations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    modules: Mapped[list[Any]] = mapped_column(JSON, default=list)
    admin_emails: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # Who hears of submissions waiting for review (the admins when empty).
    reviewer_emails: Mapped[list[Any]] = mapped_column(JSON, default=list, server_default="[]")
    webhook_url: Mapped[str | None] = mapped_column(String(2000))
    # Encrypted at rest (tenancy/sealed.py); `reveal()` only where a webhook is signed.
    webhook_secret: Mapped[SealedSecret | None] = mapped_column(SealedText)
    # An employee of this org who gets renewal tasks of assets, clients and locations. No foreign
    # key (this table is not tenant-scoped): checked when set, ignored once it is no employee.
    default_task_assignee_id: Mapped[uuid.UUID | None] = mapped_column()
    # How recipients without their own preference get email reminders (immediate, daily,
    # weekly), and when: the hour (and weekday, 0 = Monday) in the org's time zone.
    digest_frequency: Mapped[str] = mapped_column(
        String(16), default="immediate", server_default="immediate"
    )
    digest_hour: Mapped[int] = mapped_column(Integer, default=8, server_default="8")
    digest_weekday: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Conditional writes: PATCH of certifications and groups must carry If-Match (428 without).
    require_if_match: Mapped[bool] = mapped_column(default=False, server_default=false())

    def has_module(self, module: str) -> bool:
        return module in (self.modules or [])


# sha256 of each accepted platform key (Settings.db_platform_keys), written by `certs db upgrade`
# as the owner (migrations/env.py). Only the owner may read it (migration 0010): the RLS
# policies of platform tables ask `certs_platform()`, a SECURITY DEFINER function, whether the
# transaction's `app.platform` setting hashes to one of them.
platform_keys = Table(
    "platform_keys",
    Base.metadata,
    Column("digest", LargeBinary(32), primary_key=True),
)


class TenantScoped:
    """Marks a table as tenant-owned: the session filters it and RLS guards it on PostgreSQL."""

    org_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id"), primary_key=True, sort_order=-20
    )


class TenantEntity(TenantScoped):
    """A tenant-owned row with its own UUID: table key `(org_id, id)`, ORM identity `id`.

    The composite key lets other tenant tables reference it with composite foreign keys (so a
    reference can never cross organizations) and lets the table be distributed by `org_id`.
    UUIDs are globally unique, so the ORM identity can stay the single `id`.
    """

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4, sort_order=-10)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:  # noqa: N805 - declarative API
        return {"primary_key": [cls.__table__.c.id]}  # type: ignore[attr-defined]
