"""Snoozes: an assignment's reminders paused until a date; its status is not.

While snoozed, the plan creates no reminders for the assignment and the pending ones wait (they
are neither queued nor put in a digest). On its `until` day, in the org's time zone, the
reminders resume (the tick clears the snooze: `end_snoozes`), with the stage repetition due
that day, not the ones the snooze skipped. Services only flush.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from certifications.assignments.models import Assignment
from certifications.assignments.schedule import request_tick
from certifications.assignments.service import lock_assignment, refuse_revoked
from infra.context import require_org_id
from infra.errors import Invalid
from tenancy.organizations import org_today_for


def snooze(
    session: Session,
    assignment: Assignment,
    until: date,
    reason: str | None,
    *,
    actor: str,
    now: datetime,
) -> Assignment:
    """Pause (or move the end of the pause of) one assignment's reminders until `until`."""
    assignment = lock_assignment(session, assignment)
    refuse_revoked(assignment)
    today = org_today_for(session, require_org_id(), now)
    if until <= today:
        raise Invalid({"until": [f"Must be after today ({today.isoformat()})."]})
    assignment.snoozed_until = until
    assignment.snooze_reason = reason
    assignment.snoozed_by = actor
    assignment.snoozed_at = now
    assignment.updated_at = now
    session.flush()
    return assignment


def wake(session: Session, assignment: Assignment, *, now: datetime) -> Assignment:
    """End the snooze now (nothing to do without one); the tick resumes the reminders."""
    assignment = lock_assignment(session, assignment)
    if assignment.snoozed_until is not None:
        _clear(assignment)
        assignment.updated_at = now
        session.flush()
        request_tick(session)
    return assignment


def end_snoozes(session: Session, org_id: uuid.UUID, today: date, now: datetime) -> int:
    """Snoozes whose `until` day has come end (set-based); returns how many ended."""
    a = Assignment
    result = session.execute(
        update(a)
        .where(a.org_id == org_id, a.snoozed_until.is_not(None), a.snoozed_until <= today)
        .values(
            snoozed_until=None, snooze_reason=None, snoozed_by=None, snoozed_at=None, updated_at=now
        ),
        execution_options={"synchronize_session": False},
    )
    return max(result.rowcount or 0, 0)  # type: ignore[attr-defined]


def _clear(assignment: Assignment) -> None:
    assignment.snoozed_until = None
    assignment.snooze_reason = None
    assignment.snoozed_by = None
    assignment.snoozed_at = None
