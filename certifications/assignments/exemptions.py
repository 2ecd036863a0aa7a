"""Exemptions: an assignment kept on record but outside compliance (who, why, until when).

While exempt an assignment keeps its computed status, gets no reminders nor tasks (what was
pending is withdrawn at once) and counts under `exempt` instead of the compliance ratio. An
exemption with an `until` date ends by itself once that day has passed in the org's time zone
(`lift_expired`, run by the org's tick). Services only flush.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from certifications.assignments.models import Assignment
from certifications.assignments.schedule import request_tick
from certifications.assignments.service import lock_assignment, refuse_revoked
from certifications.automation.withdraw import withdraw
from certifications.history.periods import end_exemptions, open_exemption
from infra.context import require_org_id
from infra.errors import Invalid
from tenancy.organizations import org_today_for

A = Assignment


def exempt(
    session: Session,
    assignment: Assignment,
    reason: str,
    until: date | None,
    *,
    actor: str,
    now: datetime,
) -> Assignment:
    """Exempt (or change the exemption of) one assignment; withdraws its reminders and tasks."""
    assignment = lock_assignment(session, assignment)
    refuse_revoked(assignment)
    org_id = require_org_id()
    today = org_today_for(session, org_id, now)
    if until is not None and until < today:
        raise Invalid({"until": [f"Must be today ({today.isoformat()}) or later."]})
    assignment.exempt_reason = reason
    assignment.exempt_until = until
    assignment.exempt_by = actor
    assignment.exempt_at = now
    assignment.updated_at = now
    session.flush()
    open_exemption(session, assignment.id, reason=reason, until=until, by=actor, today=today)
    withdraw(session, org_id, [assignment.id], "assignment exempted", now)
    return assignment


def lift(session: Session, assignment: Assignment, *, now: datetime) -> Assignment:
    """End the exemption now (nothing to do when there is none); the tick resumes the rules."""
    assignment = lock_assignment(session, assignment)
    if assignment.exempt_at is not None:
        _clear(assignment)
        assignment.updated_at = now
        session.flush()
        end_exemptions(session, org_today_for(session, require_org_id(), now), [assignment.id])
        request_tick(session)
    return assignment


def lift_expired(session: Session, org_id: uuid.UUID, today: date, now: datetime) -> int:
    """Exemptions whose `until` day has passed end (set-based); returns how many ended."""
    ending = [A.exempt_at.is_not(None), A.exempt_until < today]
    end_exemptions(session, today, select(A.id).where(*ending))
    result = session.execute(
        update(A)
        .where(*ending)
        .values(
            exempt_reason=None, exempt_until=None, exempt_by=None, exempt_at=None, updated_at=now
        ),
        execution_options={"synchronize_session": False},
    )
    return max(result.rowcount or 0, 0)  # type: ignore[attr-defined]


def _clear(assignment: Assignment) -> None:
    assignment.exempt_reason = None
    assignment.exempt_until = None
    assignment.exempt_by = None
    assignment.exempt_at = None
