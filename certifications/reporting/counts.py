"""The maintained compliance counts (`assignment_counts`): read, verify, rebuild.

Triggers (migration 0021) keep one row per (certification, status, required, exempt, subject
active) with the number of *current* assignments (`reporting.subjects.current_assignment`), in
the transaction that changes an assignment or a subject's `active` flag. `counted()` computes
the same figures from the assignments (what the compliance figures cost before: linear in the
organization's assignments); `verify` compares both in one statement (one snapshot, so it is
exact while other transactions write), `rebuild` rewrites the organization's rows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import Select, and_, delete, func, insert, literal, select
from sqlalchemy.orm import Session

from certifications.assignments.models import Assignment, AssignmentCount
from certifications.assignments.scope import subject_active
from certifications.reporting.subjects import current_assignment
from infra.database import without_jit

_KEYS = ("certification_id", "status", "required", "exempt", "active", "revoked")


@dataclass(frozen=True)
class Mismatch:
    """A key whose stored count differs from the assignments' (`stored` or `actual` 0 if absent)."""

    certification_id: uuid.UUID
    status: str
    required: bool
    exempt: bool
    active: bool
    revoked: bool
    stored: int
    actual: int


def counted() -> Select[uuid.UUID, str, bool, bool, bool, bool, int]:
    """(certification, status, required, exempt, active, revoked, n) from the assignments."""
    a = Assignment
    keys = (
        a.certification_id,
        a.status,
        a.required,
        a.exempt_at.is_not(None).label("exempt"),
        subject_active(a).label("active"),
        a.revoked_at.is_not(None).label("revoked"),
    )
    stmt = select(*keys, func.count().label("n"))
    return stmt.where(current_assignment(a)).group_by(*keys)


def verify(session: Session) -> list[Mismatch]:
    """Every key of the current tenant whose stored count is wrong (empty when consistent)."""
    without_jit(session)
    actual = counted().subquery()
    c = AssignmentCount
    stored = (
        select(c.certification_id, c.status, c.required, c.exempt, c.active, c.revoked, c.n)
        .where(c.n != 0)
        .subquery()
    )
    on = [getattr(stored.c, k) == getattr(actual.c, k) for k in _KEYS]
    both = (
        select(
            *[func.coalesce(getattr(stored.c, k), getattr(actual.c, k)).label(k) for k in _KEYS],
            func.coalesce(stored.c.n, 0).label("stored"),
            func.coalesce(actual.c.n, 0).label("actual"),
        )
        .select_from(stored)
        .join(actual, and_(*on), full=True)
        .subquery()
    )
    rows = session.execute(
        select(both).where(both.c.stored != both.c.actual).order_by(*[both.c[k] for k in _KEYS])
    )
    return [
        Mismatch(
            r.certification_id,
            r.status,
            bool(r.required),
            bool(r.exempt),
            bool(r.active),
            bool(r.revoked),
            int(r.stored),
            int(r.actual),
        )
        for r in rows
    ]


def rebuild(session: Session, org_id: uuid.UUID) -> int:
    """Rewrite the current tenant's counts from its assignments; the number of keys written.

    Takes the counts rows' locks first (the DELETE), so a concurrent status change waits for
    this transaction and then applies its delta to the rebuilt rows."""
    c = AssignmentCount
    session.execute(delete(c).execution_options(synchronize_session=False))
    src = counted().subquery()
    stmt = insert(c).from_select(
        ["org_id", *_KEYS, "n"],
        select(literal(org_id, type_=c.org_id.type), *[src.c[k] for k in _KEYS], src.c.n),
    )
    session.execute(stmt)
    return int(session.scalar(select(func.count()).select_from(c)) or 0)
