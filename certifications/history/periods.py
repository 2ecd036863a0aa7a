"""Writing history: requirement periods and exemption periods, set-based, in the transaction of
the change (every writer only flushes).

`record_requirements` is the one writer of requirement periods: after any statement that
created assignments or changed `required` (the role fan-out, a manual or bulk assignment, and
whatever requirement source comes next), it closes the open periods of the scoped assignments
that no longer match their row and opens one for each current assignment without one. Two
statements, idempotent (running it twice changes nothing). Rows deleted because their
requirement ended have their periods closed (`close_requirements`): their days stay history.

An assignment is "current" as the views mean it: the live one of its (certification, subject),
or the latest revoked one until another is assigned.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    Uuid,
    and_,
    delete,
    exists,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Session, aliased

from certifications.assignments.models import Assignment
from certifications.history.models import ExemptionPeriod, RequirementPeriod
from infra.dialect import batches, new_uuid_sql, upsert_insert

A = Assignment
P = RequirementPeriod
X = ExemptionPeriod
_CORE_LIKE = {"synchronize_session": False}
CLOSE_BATCH = 5_000  # ids per statement, under SQLite's bound-parameter limit
_LATER = aliased(Assignment, name="later_assignment")


def superseded(a: Any = A) -> ColumnElement[bool]:
    """`a` is revoked and another assignment of its (certification, subject) is live or was
    revoked later: no longer the one the figures count."""
    b = _LATER
    later = (
        exists()
        .where(
            b.org_id == a.org_id,
            b.subject_type == a.subject_type,
            b.subject_id == a.subject_id,
            b.certification_id == a.certification_id,
            b.id != a.id,
            or_(
                b.revoked_at.is_(None),
                b.revoked_at > a.revoked_at,
                and_(b.revoked_at == a.revoked_at, b.id > a.id),
            ),
        )
        .correlate(a)
    )
    return and_(a.revoked_at.is_not(None), later)


def record_requirements(
    session: Session,
    org_id: uuid.UUID,
    today: date,
    *,
    certification_ids: Sequence[uuid.UUID] | None = None,
    subject_ids: Sequence[uuid.UUID] | None = None,
) -> int:
    """Bring the requirement periods of the assignments of these certifications and/or
    subjects in line with their rows as of `today`; returns the periods opened."""
    a_scope: list[ColumnElement[bool]] = []
    p_scope: list[ColumnElement[bool]] = [P.ends_on.is_(None)]
    if certification_ids is not None:
        a_scope.append(A.certification_id.in_(list(certification_ids)))
        p_scope.append(P.certification_id.in_(list(certification_ids)))
    if subject_ids is not None:
        a_scope.append(A.subject_id.in_(list(subject_ids)))
        p_scope.append(P.subject_id.in_(list(subject_ids)))
    # The rows the open periods must match, as one hashed set: a NOT EXISTS probe per period
    # was planned as a nested loop over a sequential scan when the statistics still described
    # `assignments` before the fan-out's own INSERT (20,000 periods: 79 s instead of 0.1 s).
    # Assignments never change certification or subject, so the periods' scope is theirs.
    current = select(A.id, A.required).where(*a_scope, ~superseded(A))
    session.execute(
        update(P)
        .where(*p_scope, tuple_(P.assignment_id, P.required).not_in(current))
        .values(ends_on=literal(today, Date())),
        execution_options=_CORE_LIKE,
    )
    dialect = session.get_bind().dialect.name
    # NOT IN over the scope's open periods: one hashed pass; a NOT EXISTS probe per row turned
    # quadratic on PostgreSQL while the new table had no statistics yet.
    open_ids = select(P.assignment_id).where(*p_scope)
    rows = select(
        new_uuid_sql(dialect),
        literal(org_id, Uuid()),
        A.id,
        A.certification_id,
        A.subject_type,
        A.subject_id,
        A.required,
        literal(today, Date()),
    ).where(*a_scope, A.id.not_in(open_ids), ~superseded(A))
    columns = [
        "id",
        "org_id",
        "assignment_id",
        "certification_id",
        "subject_type",
        "subject_id",
        "required",
        "starts_on",
    ]
    stmt = (
        upsert_insert(dialect, P)
        .from_select(columns, rows, include_defaults=False)
        .on_conflict_do_nothing(
            index_elements=[P.org_id, P.assignment_id], index_where=P.ends_on.is_(None)
        )
    )
    result = session.execute(stmt.execution_options(preserve_rowcount=True))
    return max(result.rowcount or 0, 0)  # type: ignore[attr-defined]


def close_requirements(session: Session, today: date, assignment_ids: Sequence[uuid.UUID]) -> None:
    """End the open periods of these assignments `today` (rows deleted because their
    requirement ended: their days stay history)."""
    for chunk in batches(list(assignment_ids), CLOSE_BATCH):
        session.execute(
            update(P)
            .where(P.ends_on.is_(None), P.assignment_id.in_(list(chunk)))
            .values(ends_on=literal(today, Date())),
            execution_options=_CORE_LIKE,
        )


def forget_requirements(session: Session, assignment_id: uuid.UUID) -> None:
    """An assignment deleted as a mistake was never required: its periods go with it."""
    session.execute(delete(P).where(P.assignment_id == assignment_id), execution_options=_CORE_LIKE)


# --- exemptions ------------------------------------------------------------------------------


def open_exemption(
    session: Session,
    assignment_id: uuid.UUID,
    *,
    reason: str,
    until: date | None,
    by: str,
    today: date,
) -> None:
    """The assignment is exempt from `today` (a changed exemption closes the previous one)."""
    end_exemptions(session, today, [assignment_id])
    session.add(
        ExemptionPeriod(
            assignment_id=assignment_id, reason=reason, until=until, exempt_by=by, starts_on=today
        )
    )
    session.flush()


def end_exemptions(session: Session, today: date, assignment_ids: Any) -> None:
    """The exemptions of these assignments (ids, or a SELECT of ids) end `today`."""
    session.execute(
        update(X)
        .where(X.ends_on.is_(None), X.assignment_id.in_(assignment_ids))
        .values(ends_on=literal(today, Date())),
        execution_options=_CORE_LIKE,
    )
