"""Which assignments are inside compliance: not exempt, and their subject is active.

Leavers (a deactivated employee, asset, client or location) and exempt assignments get no
reminders nor tasks and stay out of the figures (summary, views, forecast) unless a report asks
for inactive subjects. Both predicates are SQL, for the set-based statements of rules and
reports; every Core statement filters `org_id` itself (the ORM tenant filter does not apply).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, union_all

from certifications.directory.models import SUBJECT_MODELS


def inactive_subject_ids() -> Any:
    """The ids of the tenant's inactive subjects of every kind (few: one hashed NOT IN pass)."""
    return union_all(
        *[select(model.id).where(model.active.is_(False)) for model in SUBJECT_MODELS.values()]
    )


def subject_active(a: Any) -> ColumnElement[bool]:
    """`a` (the assignments entity or an alias of it) belongs to an active subject."""
    column: ColumnElement[Any] = a.subject_id
    return column.not_in(inactive_subject_ids())


def not_exempt(a: Any) -> ColumnElement[bool]:
    column: ColumnElement[Any] = a.exempt_at
    return column.is_(None)


def in_compliance(a: Any) -> ColumnElement[bool]:
    """Reminders, tasks and compliance figures apply to `a`: not exempt, subject active."""
    return and_(not_exempt(a), subject_active(a))


def newer_cycle(a: Any, b: Any) -> tuple[ColumnElement[bool], ...]:
    """`b` is another assignment of `a`'s (certification, subject), live or revoked after `a`
    (ties by id): the conditions of the correlated EXISTS that tells `a` is not the current
    cycle (`reporting.subjects`, `history.periods`)."""
    return (
        b.org_id == a.org_id,
        b.subject_type == a.subject_type,  # completes ix_assignments_subject's key
        b.subject_id == a.subject_id,
        b.certification_id == a.certification_id,
        b.id != a.id,
        or_(
            b.revoked_at.is_(None),
            b.revoked_at > a.revoked_at,
            and_(b.revoked_at == a.revoked_at, b.id > a.id),
        ),
    )
