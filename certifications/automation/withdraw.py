"""Take back what automation queued for assignments that no longer call for it.

An exempt assignment, one whose subject left (deactivated), one satisfied via an equivalent
certification, or the old cycle of a renewed one:
its unsent (`pending`) notifications are cancelled and its open renewal tasks cancelled
(`closed` for a renewal: the work was done), in the transaction of the change that made them
moot (set-based, one statement each). The tick runs `withdraw_out_of_compliance` too, so a
change that bypassed the services is caught within a tick.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, exists, select, update
from sqlalchemy.orm import Session

from certifications.assignments.models import Assignment
from certifications.assignments.scope import in_compliance
from certifications.automation.models import Notification, Task
from infra.dialect import batches

A = Assignment
N = Notification
T = Task


def withdraw(
    session: Session,
    org_id: uuid.UUID,
    assignment_ids: Iterable[uuid.UUID],
    reason: str,
    now: datetime,
    *,
    before_cycle: int | None = None,
) -> dict[str, int]:
    """Cancel pending notifications and close open tasks of these assignments (of cycles before
    `before_cycle` only, when given). Flushes nothing; returns the counts."""
    report = {"notifications_cancelled": 0, "tasks_closed": 0}
    for chunk in batches(list(dict.fromkeys(assignment_ids))):
        ids = list(chunk)
        n_where: list[ColumnElement[bool]] = [N.assignment_id.in_(ids)]
        t_where: list[ColumnElement[bool]] = [T.assignment_id.in_(ids)]
        if before_cycle is not None:
            n_where.append(N.cycle < before_cycle)
            t_where.append(T.cycle < before_cycle)
        task_status = "closed" if before_cycle is not None else "cancelled"
        counts = _apply(session, org_id, n_where, t_where, reason, now, task_status)
        for key, value in counts.items():
            report[key] += value
    return report


def withdraw_for_subjects(
    session: Session, org_id: uuid.UUID, subject_ids: Iterable[uuid.UUID], now: datetime
) -> dict[str, int]:
    """The subjects were deactivated: everything pending for their assignments is withdrawn."""
    ids = list(dict.fromkeys(subject_ids))
    report = {"notifications_cancelled": 0, "tasks_closed": 0}
    for chunk in batches(ids):
        of_subjects = select(A.id).where(A.subject_id.in_(list(chunk)))
        counts = _apply(
            session,
            org_id,
            [N.assignment_id.in_(of_subjects)],
            [T.assignment_id.in_(of_subjects)],
            "subject deactivated",
            now,
            "cancelled",
        )
        for key, value in counts.items():
            report[key] += value
    return report


def withdraw_out_of_compliance(session: Session, org_id: uuid.UUID, now: datetime) -> int:
    """The tick's sweep: pending notifications and open tasks of exempt assignments, inactive
    subjects, or assignments satisfied via an equivalent certification (returns how many rows
    changed)."""
    covered = A.satisfied_via_id.is_(None)
    outside = ~exists().where(A.id == N.assignment_id, in_compliance(A), covered)
    outside_t = ~exists().where(A.id == T.assignment_id, in_compliance(A), covered)
    counts = _apply(session, org_id, [outside], [outside_t], "outside compliance", now, "cancelled")
    return sum(counts.values())


def _apply(
    session: Session,
    org_id: uuid.UUID,
    n_where: list[ColumnElement[bool]],
    t_where: list[ColumnElement[bool]],
    reason: str,
    now: datetime,
    task_status: str,
) -> dict[str, int]:
    cancelled = session.execute(
        update(N)
        .where(N.status == "pending", *n_where)
        .values(status="cancelled", last_error=reason, updated_at=now),
        execution_options={"synchronize_session": False},
    )
    closed = session.execute(
        update(T)
        .where(T.status == "open", *t_where)
        .values(status=task_status, closed_at=now, updated_at=now),
        execution_options={"synchronize_session": False},
    )
    return {
        "notifications_cancelled": _count(cancelled),
        "tasks_closed": _count(closed),
    }


def _count(result: Any) -> int:
    return max(result.rowcount or 0, 0)
