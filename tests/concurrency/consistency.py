"""Invariants a concurrency run must leave intact, read straight from the database.

`drifted_statuses(org_id)`: assignments whose stored status is not what the status rules
(`certifications.assignments.status.assignment_status`) answer for the organization's today,
revoked rows not stored as revoked included. `duplicate_cycles(org_id)`: closed cycles recorded
more than once for one assignment (a lost renewal leaves exactly that).

`repeated_revocations(org_id)`: assignments with more than one status event into `revoked`. A
revocation records one; another one is the tick's recomputation repairing a drifted status,
so this still shows a drift after the worker has healed it.

All return plain lists, empty when the invariant holds, so a failing assert shows the rows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select

from certifications.assignments.models import Assignment, AssignmentCycle, StatusEvent
from certifications.assignments.status import assignment_status
from certifications.catalog.models import Certification
from certifications.vocabulary import REVOKED
from infra import context
from infra import database as db
from tenancy.organizations import org_today_for


@dataclass(frozen=True)
class Drift:
    assignment_id: uuid.UUID
    stored: str
    expected: str
    revoked: bool
    cycle: int


@dataclass(frozen=True)
class DuplicateCycle:
    assignment_id: uuid.UUID
    cycle: int
    rows: int


def drifted_statuses(org_id: uuid.UUID) -> list[Drift]:
    """Every assignment of the org whose stored status differs from the rules' answer today."""
    with context.tenant(org_id), db.new_session() as s:
        today = org_today_for(s, org_id, db.utcnow())
        rows = s.execute(
            select(Assignment, Certification).join(
                Certification, Certification.id == Assignment.certification_id
            )
        ).all()
        return [
            Drift(a.id, a.status, expected, a.revoked_at is not None, a.cycle)
            for a, cert in rows
            if (expected := assignment_status(a, cert, today)) != a.status
        ]


def duplicate_cycles(org_id: uuid.UUID) -> list[DuplicateCycle]:
    """(assignment, cycle) pairs of the org's history recorded by more than one row."""
    count = func.count()
    with context.tenant(org_id), db.new_session() as s:
        rows = s.execute(
            select(AssignmentCycle.assignment_id, AssignmentCycle.cycle, count)
            .group_by(AssignmentCycle.assignment_id, AssignmentCycle.cycle)
            .having(count > 1)
            .order_by(AssignmentCycle.assignment_id, AssignmentCycle.cycle)
        ).all()
        return [DuplicateCycle(a, c, n) for a, c, n in rows]


def repeated_revocations(org_id: uuid.UUID) -> list[tuple[uuid.UUID, int]]:
    """(assignment, events into `revoked`) for assignments revoked by more than one event."""
    count = func.count()
    with context.tenant(org_id), db.new_session() as s:
        rows = s.execute(
            select(StatusEvent.assignment_id, count)
            .where(StatusEvent.to_status == REVOKED)
            .group_by(StatusEvent.assignment_id)
            .having(count > 1)
            .order_by(StatusEvent.assignment_id)
        ).all()
        return [(a, n) for a, n in rows]
