"""Creating and changing organizations, and what "today" is for one."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from infra.database import get_or_not_found
from infra.errors import DomainError
from tenancy import sealed
from tenancy.models import MODULES, Organization
from tenancy.sealed import SealedSecret, SecretBox, SecretUnavailable


def create_organization(session: Session, **fields: Any) -> Organization:
    org = Organization(
        name=fields["name"],
        timezone=fields.get("timezone") or "UTC",
        modules=sorted(set(fields.get("modules") or [])),
        admin_emails=list(fields.get("admin_emails") or []),
        reviewer_emails=list(fields.get("reviewer_emails") or []),
    )
    session.add(org)
    session.flush()
    return org


def org_today(timezone: str, now: datetime) -> date:
    """'Today' in an organization's time zone (`now` must be timezone-aware).

    Every status, rule and forecast is computed for this date, never for the server's.
    """
    return now.astimezone(ZoneInfo(timezone)).date()


def org_today_for(session: Session, org_id: uuid.UUID, now: datetime) -> date:
    """`org_today` for the organization `org_id`, read through `session` (UTC once it is gone)."""
    org = session.get(Organization, org_id)
    return org_today(org.timezone if org else "UTC", now)


def get_organization(session: Session, org_id: uuid.UUID) -> Organization:
    # Auth may have loaded it into this session (no second query), or found it in
    # `tenancy.org_cache` (a detached copy): then this loads the row the caller reads or changes.
    return get_or_not_found(session, Organization, org_id, "organization")


def update_organization(session: Session, org: Organization, changes: dict[str, Any]) -> None:
    """Apply validated changes; a new webhook secret is sealed (encrypted) before it is kept."""
    for key, value in changes.items():
        if key == "webhook_secret" and value is not None:
            value = SealedSecret.seal(value)
        setattr(org, key, value)
    session.flush()


def reseal_webhook_secrets(session: Session, box: SecretBox | None = None) -> dict[str, Any]:
    """Re-encrypt every stored webhook secret under the first key (`certs secrets rotate`).

    Seals secrets stored in clear before encryption existed, and moves those sealed with an
    older key to the first one, so the older key can then be dropped. Platform context (every
    organization). Secrets no configured key opens are left as they are and listed.
    """
    box = box or sealed.box()
    report: dict[str, Any] = {"checked": 0, "resealed": 0, "unreadable": []}
    orgs = session.scalars(select(Organization).where(Organization.webhook_secret.is_not(None)))
    for org in orgs:
        current = org.webhook_secret
        assert current is not None
        report["checked"] += 1
        try:
            fresh = box.reseal(current.stored)
        except SecretUnavailable:
            report["unreadable"].append(str(org.id))
            continue
        org.webhook_secret = SealedSecret(fresh)
        report["resealed"] += 1
    session.flush()
    return report


class UnknownModule(DomainError):
    """A module name that is not one of `MODULES` (404: it is the path), listing the valid ones."""

    http_status = 404


def set_module(session: Session, org: Organization, module: str, enabled: bool) -> None:
    if module not in MODULES:
        valid = ", ".join(MODULES)
        raise UnknownModule(
            f"Unknown module {module!r}; the modules are: {valid}.",
            {"module": [f"One of: {valid}."]},
        )
    current = set(org.modules or [])
    current = current | {module} if enabled else current - {module}
    org.modules = sorted(current)
    session.flush()
