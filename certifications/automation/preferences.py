"""Per-recipient reminder preferences: immediate, or one daily/weekly digest at an hour.

Keyed by email address (lower case), because reminders go to addresses, whoever holds them
(employees, admins, literal addresses). An address without a row follows the organization's
`digest_frequency`, `digest_hour` and `digest_weekday`. Services only flush.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from certifications.automation.models import NotificationPreference
from infra.context import require_org_id
from infra.database import utcnow
from infra.dialect import upsert_insert
from infra.errors import NotFound


def list_statement() -> Select[Any]:
    return select(NotificationPreference)


def get_preference(session: Session, email: str) -> NotificationPreference:
    pref = session.get(NotificationPreference, (require_org_id(), email.lower()))
    if pref is None:
        raise NotFound("notification preference", email)
    return pref


def put_preference(session: Session, email: str, data: dict[str, Any]) -> NotificationPreference:
    """Create or replace the address's preference (one upsert: concurrent PUTs cannot clash)."""
    key, now, org_id = email.lower(), utcnow(), require_org_id()
    values = {k: data[k] for k in ("frequency", "hour", "weekday")}
    table = NotificationPreference.__table__
    stmt = upsert_insert(session.get_bind().dialect.name, NotificationPreference).values(
        org_id=org_id, email=key, created_at=now, updated_at=now, **values
    )
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[table.c.org_id, table.c.email], set_={**values, "updated_at": now}
        )
    )
    pref = session.get(NotificationPreference, (org_id, key), populate_existing=True)
    assert pref is not None  # noqa: S101 - just written
    return pref


def delete_preference(session: Session, email: str) -> None:
    """Back to the organization's setting (404 when the address had no preference)."""
    session.delete(get_preference(session, email))
    session.flush()
