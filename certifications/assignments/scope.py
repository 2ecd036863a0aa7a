"""Which assignments are inside compliance: not exempt, and their subject is active.

Leavers (a deactivated employee, asset, client or location) and exempt assignments get no
reminders nor tasks and stay out of the figures (summary, views, forecast) unless a report asks
for inactive subjects. Both predicates are SQL, for the set-based statements of rules and
reports; every Core statement filters `org_id` itself (the ORM tenant filter does not apply).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, and_, select, union_all

from certifications.directory.models import SUBJECT_MODELS


def inactive_subject_ids(org_id: uuid.UUID) -> Any:
    """The ids of the org's inactive subjects of every kind (few: one hashed NOT IN pass)."""
    return union_all(
        *[
            select(model.id).where(model.org_id == org_id, model.active.is_(False))
            for model in SUBJECT_MODELS.values()
        ]
    )


def subject_active(org_id: uuid.UUID, a: Any) -> ColumnElement[bool]:
    """`a` (the assignments table or entity) belongs to an active subject."""
    column: ColumnElement[Any] = _col(a, "subject_id")
    return column.not_in(inactive_subject_ids(org_id))


def not_exempt(a: Any) -> ColumnElement[bool]:
    column: ColumnElement[Any] = _col(a, "exempt_at")
    return column.is_(None)


def in_compliance(org_id: uuid.UUID, a: Any) -> ColumnElement[bool]:
    """Reminders, tasks and compliance figures apply to `a`: not exempt, subject active."""
    return and_(not_exempt(a), subject_active(org_id, a))


def _col(a: Any, name: str) -> Any:
    return getattr(a.c, name) if hasattr(a, "c") else getattr(a, name)
