"""Writing history: requirement periods and exemption periods, set-based, in the transaction of
the change (every writer only flushes).

A requirement period still open lives on its assignment row: `counted_since` (the org-local day
since which the row has counted in the figures with its current requirement) and
`counted_required` (that requirement), both null while the row does not count. Closed periods
are `requirement_periods` rows. So the writers that create assignments (the role fan-out, a
manual or bulk assignment) set both columns in their own INSERT: a 100k-row fan-out writes its
rows once, not once more as open periods (docs/decisions.md).

`record_requirements` then brings the scoped rows in line after any statement that created
assignments or changed `required`: a row that stopped counting (superseded) or whose `required`
changed gets its open period closed into `requirement_periods`, and a row that counts without
an open period gets one from today. Three statements that touch only such rows, idempotent
(running it twice changes nothing). Rows deleted because their requirement ended have their
open period written as a closed one (`close_requirements`): their days stay history.

An assignment "counts" as the views mean it: the live one of its (certification, subject), or
the latest revoked one until another is assigned.
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
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased

from certifications.assignments.models import Assignment
from certifications.assignments.scope import newer_cycle
from certifications.history.models import ExemptionPeriod, RequirementPeriod
from infra.dialect import batches, new_uuid_sql

A = Assignment
P = RequirementPeriod
X = ExemptionPeriod
_CORE_LIKE = {"synchronize_session": False}
CLOSE_BATCH = 5_000  # ids (or period rows) per statement, under SQLite's bound-parameter limit
_LATER = aliased(Assignment, name="later_assignment")
PERIOD_COLUMNS = [
    "id",
    "org_id",
    "assignment_id",
    "certification_id",
    "subject_type",
    "subject_id",
    "required",
    "starts_on",
    "ends_on",
]


def superseded(a: Any = A) -> ColumnElement[bool]:
    """`a` is revoked and another assignment of its (certification, subject) is live or was
    revoked later: no longer the one the figures count."""
    later = exists().where(*newer_cycle(a, _LATER)).correlate(a)
    return and_(a.revoked_at.is_not(None), later)


def record_requirements(
    session: Session,
    org_id: uuid.UUID,
    today: date,
    *,
    certification_ids: Sequence[uuid.UUID] | None = None,
    subject_ids: Sequence[uuid.UUID] | None = None,
) -> int:
    """Bring the open requirement periods of the assignments of these certifications and/or
    subjects in line with their rows as of `today`; returns the periods opened."""
    scope: list[ColumnElement[bool]] = []
    if certification_ids is not None:
        scope.append(A.certification_id.in_(list(certification_ids)))
    if subject_ids is not None:
        scope.append(A.subject_id.in_(list(subject_ids)))
    # Each statement filters on the open period first (cheap column tests), so rows that
    # already carry the right one (a fan-out's new rows) are read, never rewritten; the
    # superseded probe runs only for revoked rows.
    counted = A.counted_since.is_not(None)
    changed = A.counted_required != A.required  # both set whenever counted_since is
    gone = superseded(A)
    # 1. Close the open periods that no longer match their row. One opened today covers no
    #    day: nothing to keep.
    dialect = session.get_bind().dialect.name
    ended = select(
        new_uuid_sql(dialect),
        literal(org_id, Uuid()),
        A.id,
        A.certification_id,
        A.subject_type,
        A.subject_id,
        A.counted_required,
        A.counted_since,
        literal(today, Date()),
    ).where(*scope, counted, A.counted_since < today, or_(changed, gone))
    # Locked as read: a concurrent close of the same rows waits for this transaction, then
    # reads them moved on (step 3) and writes nothing; unlocked, it read them as they were and
    # wrote the same closed period again. (SQLite has one writer at a time.)
    ended = ended.with_for_update(of=A)
    session.execute(insert(P).from_select(PERIOD_COLUMNS, ended, include_defaults=False))
    # 2. Superseded rows stop counting. `updated_at` is kept: the assignment did not change
    #    for its readers (`updated_since` listings).
    unchanged = {"updated_at": A.updated_at}
    session.execute(
        update(A)
        .where(*scope, counted, gone)
        .values(counted_since=None, counted_required=None, **unchanged),
        execution_options=_CORE_LIKE,
    )
    # 3. Rows that count without an open period, or with one of another requirement, count
    #    from today as they are.
    result = session.execute(
        update(A)
        .where(*scope, or_(A.counted_since.is_(None), changed), ~gone)
        .values(counted_since=literal(today, Date()), counted_required=A.required, **unchanged),
        execution_options=_CORE_LIKE,
    )
    return max(result.rowcount or 0, 0)  # type: ignore[attr-defined]


def close_requirements(session: Session, today: date, removed: Sequence[Any]) -> None:
    """End `today` the requirement of these deleted assignments (rows with `org_id`, `id`,
    `certification_id`, `subject_type`, `subject_id`, `counted_since`, `counted_required`, as
    their DELETE returned them): their days stay history."""
    periods = [
        {
            "id": uuid.uuid4(),
            "org_id": r.org_id,
            "assignment_id": r.id,
            "certification_id": r.certification_id,
            "subject_type": r.subject_type,
            "subject_id": r.subject_id,
            "required": r.counted_required,
            "starts_on": r.counted_since,
            "ends_on": today,
        }
        for r in removed
        if r.counted_since is not None and r.counted_since < today
    ]
    for rows in batches(periods, CLOSE_BATCH):
        session.execute(insert(P), list(rows))
    # Open period rows written before migration 0024 moved them onto the assignments.
    for chunk in batches([r.id for r in removed], CLOSE_BATCH):
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
