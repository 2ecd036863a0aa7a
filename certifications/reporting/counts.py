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
from typing import Any

from sqlalchemy import Select, delete, func, insert, literal, select, text, union_all
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.orm import Session

from certifications.assignments.models import Assignment, AssignmentCount
from certifications.assignments.scope import inactive_subject_ids
from certifications.reporting.subjects import newer_cycle_exists
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


def counted(dialect: str = "postgresql") -> Select[Any, Any, Any, Any, Any, Any, int]:
    """(certification, status, required, exempt, active, revoked, n) from the assignments.

    PostgreSQL: each (certification, subject)'s current row by one sort (`DISTINCT ON`), then
    one hashed outer join to the few inactive subjects. No self anti-join: on rows just written
    (no statistics yet) the planner merged 10,000 revoked rows with each other on the
    certification alone (over 30 s). SQLite: live rows and latest revoked rows as two branches.
    """
    a = Assignment
    cols = (
        a.certification_id,
        a.status,
        a.required,
        a.exempt_at.is_not(None).label("exempt"),
        a.revoked_at.is_not(None).label("revoked"),
        a.subject_id,
    )
    if dialect == "postgresql":
        pair = (a.subject_type, a.subject_id, a.certification_id)
        current = (
            select(*cols)
            .ext(distinct_on(*pair))
            .order_by(*pair, a.revoked_at.is_(None).desc(), a.revoked_at.desc(), a.id.desc())
            .subquery()
        )
    else:
        current = union_all(
            select(*cols).where(a.revoked_at.is_(None)),
            select(*cols).where(a.revoked_at.is_not(None), ~newer_cycle_exists(a)),
        ).subquery()
    inactive = inactive_subject_ids().subquery()
    keys = (
        current.c.certification_id,
        current.c.status,
        current.c.required,
        current.c.exempt,
        inactive.c.id.is_(None).label("active"),
        current.c.revoked,
    )
    return (
        select(*keys, func.count().label("n"))
        .select_from(current)
        .outerjoin(inactive, inactive.c.id == current.c.subject_id)
        .group_by(*keys)
    )


def verify(session: Session) -> list[Mismatch]:
    """Every key of the current tenant whose stored count is wrong (empty when consistent).

    Both sides come from one statement (`UNION ALL`, so one snapshot: exact while other
    transactions write) and are compared here: a few hundred rows each."""
    _full_scan(session)
    c = AssignmentCount
    actual = counted(session.get_bind().dialect.name).subquery()
    stored = select(literal(True).label("stored"), *[c.__table__.c[k] for k in _KEYS], c.n)
    both = union_all(
        stored.where(c.n != 0),
        select(literal(False).label("stored"), *[actual.c[k] for k in _KEYS], actual.c.n),
    )
    sides: dict[bool, dict[tuple[Any, ...], int]] = {True: {}, False: {}}
    for row in session.execute(both):
        key = (row[1], row[2], bool(row[3]), bool(row[4]), bool(row[5]), bool(row[6]))
        sides[bool(row[0])][key] = sides[bool(row[0])].get(key, 0) + int(row[7])
    found = [
        Mismatch(k[0], k[1], k[2], k[3], k[4], k[5], sides[True].get(k, 0), sides[False].get(k, 0))
        for k in set(sides[True]) | set(sides[False])
        if sides[True].get(k, 0) != sides[False].get(k, 0)
    ]
    return sorted(found, key=lambda m: (str(m.certification_id), m.status, m.required,
                                        m.exempt, m.active, m.revoked))  # fmt: skip


def _full_scan(session: Session) -> None:
    """Verify and rebuild read every assignment of the org: hash joins only, no JIT. Rows just
    written have no statistics yet, and a plan made for "one row" probed every assignment by
    `org_id` alone for each assignment (10,000 revoked rows: over 30 s)."""
    without_jit(session)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL enable_nestloop = off"))


def rebuild(session: Session, org_id: uuid.UUID) -> int:
    """Rewrite the current tenant's counts from its assignments; the number of keys written.

    Takes the counts rows' locks first (the DELETE), so a concurrent status change waits for
    this transaction and then applies its delta to the rebuilt rows."""
    c = AssignmentCount
    _full_scan(session)
    session.execute(delete(c).execution_options(synchronize_session=False))
    src = counted(session.get_bind().dialect.name).subquery()
    stmt = insert(c).from_select(
        ["org_id", *_KEYS, "n"],
        select(literal(org_id, type_=c.org_id.type), *[src.c[k] for k in _KEYS], src.c.n),
    )
    session.execute(stmt)
    return int(session.scalar(select(func.count()).select_from(c)) or 0)
