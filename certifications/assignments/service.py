"""Assignments (SPEC §4): create, change dates, renew, revoke, delete, form submissions, history.

Services only flush; the caller (request or job) owns the commit. Every write stores the status
the rules give for "today" in the organization's time zone and records a status event when it
changes (the source of notifications and the audit trail). Every change of an existing
assignment starts by locking its row (`lock_assignment`), so concurrent writers of one
assignment take turns and each sees what the previous one committed.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from certifications.assignments import equivalence
from certifications.assignments import status as rules
from certifications.assignments.models import (
    Assignment,
    AssignmentCycle,
    FormSubmission,
    StatusEvent,
)
from certifications.assignments.schedule import request_tick
from certifications.audit.trail import record
from certifications.automation.withdraw import withdraw
from certifications.catalog import forms
from certifications.catalog.models import Certification
from certifications.catalog.service import get_certification
from certifications.directory.models import SUBJECT_MODELS
from certifications.history.periods import forget_requirements, record_requirements
from certifications.vocabulary import MISSING, REVOKED
from infra.context import require_org_id
from infra.database import get_or_not_found, utcnow
from infra.errors import Conflict, Invalid, NotFound
from tenancy.organizations import org_today_for

DATE_FIELDS = ("issued_on", "effective_on", "expires_on")


def get_assignment(session: Session, assignment_id: uuid.UUID) -> Assignment:
    return get_or_not_found(session, Assignment, assignment_id, "assignment")


def lock_assignment(session: Session, assignment: Assignment) -> Assignment:
    """Re-read `assignment` locked until the transaction ends (the same object, refreshed).

    Every read-modify-write of an assignment (correct, renew, revoke, submit a form) starts
    here: `SELECT … FOR UPDATE` with `populate_existing`, so a concurrent writer of the same row
    waits for our commit and then reads what we wrote: its `cycle + 1` counts our renewal, and a
    revocation it had not seen makes it answer 409 instead of writing over it. SQLite has no
    row locks (it drops FOR UPDATE): a no-op UPDATE takes its database write lock first, which
    serializes writers there the same way. 404 if the row went away meanwhile (the fan-out
    deletes unrecorded role assignments).
    """
    if session.get_bind().dialect.name == "sqlite":
        session.execute(
            update(Assignment)
            .where(Assignment.id == assignment.id)
            .values(updated_at=Assignment.updated_at)
            .execution_options(synchronize_session=False)
        )
    locked = session.get(Assignment, assignment.id, with_for_update=True, populate_existing=True)
    if locked is None:
        raise NotFound("assignment", assignment.id)
    return locked


def create_assignment(
    session: Session, data: dict[str, Any], *, actor: str, now: datetime
) -> Assignment:
    """Assign a certification to one subject (source `manual`)."""
    cert = _certification_for_create(session, data["certification_id"])
    if data["subject_type"] != cert.type:
        raise Invalid({"subject_type": [f"This certification applies to {cert.type}s."]})
    model = SUBJECT_MODELS[data["subject_type"]]
    subject = session.get(model, data["subject_id"])
    if subject is None:
        raise Invalid({"subject_id": [f"No {data['subject_type']} with this id."]})
    if not subject.active:
        raise Conflict(
            f"This {data['subject_type']} is inactive (a leaver): reactivate it before "
            "assigning certifications to it.",
            {"subject_id": ["Inactive."]},
        )
    _refuse_second_live(session, cert.id, data["subject_id"])
    today = org_today_for(session, require_org_id(), now)
    issued = data.get("issued_on")
    if issued is None and cert.valid_when_added:
        issued = today
    issued, effective, expires = _dates(
        cert, issued, data.get("effective_on"), data.get("expires_on")
    )
    assignment = Assignment(
        id=uuid.uuid4(),
        certification_id=cert.id,
        subject_type=data["subject_type"],
        subject_id=data["subject_id"],
        source="manual",
        required=True,
        cycle=1,
        issued_on=issued,
        effective_on=effective,
        expires_on=expires,
        expires_explicit=data.get("expires_on") is not None,
        notes=data.get("notes"),
        status=MISSING,
        status_changed_at=now,
        created_by=actor,
        cycle_recorded_by=actor,
        created_at=now,
        updated_at=now,
        # Required from today: the open requirement period (certifications.history.periods).
        counted_since=today,
        counted_required=True,
    )
    try:
        with session.begin_nested():
            session.add(assignment)
            session.flush()
    except IntegrityError as exc:  # a concurrent request won the race for the live slot
        raise _live_conflict() from exc
    restatus(session, assignment, cert, today, now, created=True)
    # A revoked predecessor stops counting from today: the history closes its period.
    record_requirements(
        session,
        require_org_id(),
        today,
        certification_ids=[cert.id],
        subject_ids=[assignment.subject_id],
    )
    return assignment


def update_assignment(
    session: Session, assignment: Assignment, changes: dict[str, Any], *, now: datetime
) -> Assignment:
    """Correct the current cycle's dates or notes; expiry follows unless given explicitly."""
    assignment = lock_assignment(session, assignment)
    if "notes" in changes:
        assignment.notes = changes["notes"]
    date_changes = {k: v for k, v in changes.items() if k in DATE_FIELDS}
    if date_changes:
        refuse_revoked(assignment)
        cert = get_certification(session, assignment.certification_id)
        issued = date_changes.get("issued_on", assignment.issued_on)
        effective = date_changes.get("effective_on", assignment.effective_on)
        if "issued_on" in date_changes and "effective_on" not in date_changes:
            # An effective date that merely defaulted to the issue date follows it.
            if assignment.effective_on in (None, assignment.issued_on):
                effective = None
        expires = date_changes.get("expires_on", assignment.expires_on)
        moved = date_changes.keys() & {"issued_on", "effective_on"}
        if "expires_on" not in date_changes and moved and not assignment.expires_explicit:
            expires = None  # a computed expiry follows the new dates
        if issued is None and "issued_on" in date_changes:
            effective = expires = None  # clearing the record clears its dates
        assignment.issued_on, assignment.effective_on, assignment.expires_on = _dates(
            cert, issued, effective, expires
        )
        if "expires_on" in date_changes:
            assignment.expires_explicit = date_changes["expires_on"] is not None
        elif expires is None:
            assignment.expires_explicit = False
    assignment.updated_at = now
    session.flush()
    cert = get_certification(session, assignment.certification_id)
    restatus(session, assignment, cert, org_today_for(session, require_org_id(), now), now)
    return assignment


def renew_assignment(
    session: Session, assignment: Assignment, data: dict[str, Any], *, actor: str, now: datetime
) -> Assignment:
    """Record a new cycle; the previous one is kept in the assignment's history."""
    assignment = lock_assignment(session, assignment)
    refuse_revoked(assignment)
    cert = get_certification(session, assignment.certification_id)
    org_id = require_org_id()
    today = org_today_for(session, org_id, now)
    issued, effective, expires = _dates(
        cert, data.get("issued_on") or today, data.get("effective_on"), data.get("expires_on")
    )
    current = (assignment.issued_on, assignment.effective_on, assignment.expires_on)
    if (issued, effective, expires) == current:
        return assignment  # the current cycle already (a repeated request): no new cycle
    _refuse_going_back(assignment, effective)
    session.add(
        AssignmentCycle(
            assignment_id=assignment.id,
            cycle=assignment.cycle,
            issued_on=assignment.issued_on,
            effective_on=assignment.effective_on,
            expires_on=assignment.expires_on,
            notes=assignment.notes,
            recorded_by=assignment.cycle_recorded_by,
            created_at=assignment.updated_at or now,
            closed_at=now,
        )
    )
    assignment.cycle += 1
    assignment.cycle_recorded_by = actor
    assignment.issued_on, assignment.effective_on = issued, effective
    assignment.expires_on = expires
    assignment.expires_explicit = data.get("expires_on") is not None
    assignment.form_accepted_at = None  # a new cycle needs its own accepted form
    if "notes" in data:
        assignment.notes = data["notes"]
    assignment.updated_at = now
    session.flush()
    # The old cycle's open renewal tasks and unsent reminders go with it, in this transaction.
    withdraw(
        session,
        org_id,
        [assignment.id],
        "superseded by a renewal",
        now,
        before_cycle=assignment.cycle,
    )
    restatus(session, assignment, cert, today, now, cycle_started=True)
    return assignment


def delete_assignment(session: Session, assignment: Assignment) -> None:
    """Remove an assignment made by hand by mistake: the row and everything hanging off it
    (cycles, status events, notifications, tasks) go; the audit trail keeps its history.

    A rule-sourced assignment (a role) would come back at the next fan-out: 409, exempt it.
    """
    assignment = lock_assignment(session, assignment)
    if assignment.source != "manual":
        raise Conflict(
            f"This assignment is required by a rule ({assignment.source}) and cannot be "
            f"deleted; exempt it instead: POST /assignments/{assignment.id}/exemption "
            '{"reason": "...", "until": null}.',
            {"source": [assignment.source]},
        )
    record(
        session,
        "delete",
        "assignment_history",
        assignment.id,
        before=_history_json(session, assignment),
    )
    from certifications.assignments.recompute import dependents_of_ids, recompute_statuses

    dependents = dependents_of_ids(session, [assignment.id])  # found while it still exists
    forget_requirements(session, assignment.id)
    session.delete(assignment)
    session.flush()
    if dependents:  # what this record provided goes with it
        now = utcnow()
        today = org_today_for(session, require_org_id(), now)
        recompute_statuses(session, require_org_id(), today, assignment_ids=dependents, now=now)


def revoke_assignment(
    session: Session, assignment: Assignment, reason: str, *, actor: str, now: datetime
) -> Assignment:
    """Cancel on purpose, with a documented reason; the row stays as history."""
    assignment = lock_assignment(session, assignment)
    refuse_revoked(assignment)
    assignment.revoked_at = now
    assignment.revoked_reason = reason
    assignment.revoked_by = actor
    assignment.updated_at = now
    session.flush()
    cert = get_certification(session, assignment.certification_id)
    restatus(session, assignment, cert, org_today_for(session, require_org_id(), now), now)
    return assignment


def submit_form(
    session: Session,
    assignment: Assignment,
    answers: dict[str, Any],
    *,
    actor: str,
    now: datetime,
) -> FormSubmission:
    """Validate answers against the certification's form; an accepted one records the cycle."""
    assignment = lock_assignment(session, assignment)
    refuse_revoked(assignment)
    cert = get_certification(session, assignment.certification_id)
    fields = forms.form_fields(cert.form)
    if not fields:
        raise Conflict("This certification has no form to submit.")
    clean = forms.validate_answers(fields, answers)
    today = org_today_for(session, require_org_id(), now)
    submission = FormSubmission(
        assignment_id=assignment.id,
        cycle=assignment.cycle,
        answers=clean,
        status="accepted",
        submitted_by=actor,
        created_at=now,
    )
    session.add(submission)
    assignment.form_accepted_at = now
    if assignment.issued_on is None:
        assignment.issued_on, assignment.effective_on, assignment.expires_on = _dates(
            cert, today, None, None
        )
        assignment.expires_explicit = False
    assignment.updated_at = now
    session.flush()
    restatus(session, assignment, cert, today, now)
    return submission


def history(session: Session, assignment: Assignment) -> dict[str, Any]:
    """Every cycle (closed ones, then the current one), status events and form submissions."""
    closed = session.scalars(
        select(AssignmentCycle)
        .where(AssignmentCycle.assignment_id == assignment.id)
        .order_by(AssignmentCycle.cycle, AssignmentCycle.id)
    ).all()
    cycles: list[dict[str, Any]] = [
        {
            "cycle": c.cycle,
            "issued_on": c.issued_on,
            "effective_on": c.effective_on,
            "expires_on": c.expires_on,
            "notes": c.notes,
            "recorded_by": c.recorded_by,
            "closed_at": c.closed_at,
            "current": False,
        }
        for c in closed
    ]
    cycles.append(
        {
            "cycle": assignment.cycle,
            "issued_on": assignment.issued_on,
            "effective_on": assignment.effective_on,
            "expires_on": assignment.expires_on,
            "notes": assignment.notes,
            "recorded_by": assignment.cycle_recorded_by,
            "closed_at": None,
            "current": True,
        }
    )
    events = session.scalars(
        select(StatusEvent)
        .where(StatusEvent.assignment_id == assignment.id)
        .order_by(StatusEvent.created_at, StatusEvent.id)
    ).all()
    submissions = session.scalars(
        select(FormSubmission)
        .where(FormSubmission.assignment_id == assignment.id)
        .order_by(FormSubmission.created_at, FormSubmission.id)
    ).all()
    return {
        "assignment_id": assignment.id,
        "cycles": cycles,
        "status_events": list(events),
        "form_submissions": list(submissions),
    }


def _history_json(session: Session, assignment: Assignment) -> dict[str, Any]:
    """`history()` as plain values, for the audit trail."""
    h = history(session, assignment)
    return {
        "cycles": h["cycles"],
        "status_events": [
            {
                "cycle": e.cycle,
                "from_status": e.from_status,
                "to_status": e.to_status,
                "on_date": e.on_date,
                "created_at": e.created_at,
            }
            for e in h["status_events"]
        ],
        "form_submissions": [
            {
                "cycle": f.cycle,
                "answers": f.answers,
                "submitted_by": f.submitted_by,
                "created_at": f.created_at,
            }
            for f in h["form_submissions"]
        ],
    }


def restatus(
    session: Session,
    assignment: Assignment,
    cert: Certification,
    today: date,
    now: datetime,
    *,
    created: bool = False,
    cycle_started: bool = False,
) -> None:
    """Store the rules' status for today; record an event when it changed.

    A new assignment's first status is stored on the row, not as an event (the role fan-out
    creates rows the same way); a new cycle records an event even when the status stays.
    """
    new = rules.assignment_status(assignment, cert, today)
    via = None
    if new != REVOKED and equivalence.depends_on(session, cert.id):
        providers = equivalence.provider_statuses(session, assignment, today)
        new, via = equivalence.effective_status(new, providers)
    assignment.satisfied_via_id = via
    request_tick(session)  # rules read the stored status: evaluate them within seconds
    if created or (new == assignment.status and not cycle_started):
        assignment.status = new
        session.flush()
        follow_equivalences(session, [assignment.id], today, now)
        return
    session.add(
        StatusEvent(
            assignment_id=assignment.id,
            cycle=assignment.cycle,
            from_status=assignment.status,
            to_status=new,
            on_date=today,
            created_at=now,
        )
    )
    if new != assignment.status:
        assignment.status_changed_at = now
    assignment.status = new
    session.flush()
    follow_equivalences(session, [assignment.id], today, now)


def follow_equivalences(
    session: Session, provider_ids: list[uuid.UUID], today: date, now: datetime
) -> int:
    """Recompute the assignments that an equivalence makes follow these (set-based, this
    transaction): the same subjects' records of the certifications theirs satisfy."""
    # Imported here: recompute reaches this module through exemptions (an import cycle).
    from certifications.assignments.recompute import dependents_of_ids, recompute_statuses

    dependents = dependents_of_ids(session, provider_ids)
    if not dependents:
        return 0
    return recompute_statuses(session, require_org_id(), today, assignment_ids=dependents, now=now)


def _dates(
    cert: Certification, issued: date | None, effective: date | None, expires: date | None
) -> tuple[date | None, date | None, date | None]:
    """(issued, effective, expires) with SPEC §4's defaults, or 422 naming the field."""
    if issued is None:
        if effective is not None or expires is not None:
            given = "effective_on" if effective is not None else "expires_on"
            raise Invalid({"issued_on": [f"Required when {given} is given."]})
        return None, None, None
    if effective is not None and effective < issued:
        raise Invalid({"effective_on": ["Must not be before issued_on."]})
    effective = effective or issued
    if expires is None:
        expires = rules.compute_expiry(effective, cert.validity_months, cert.validity_days)
    elif expires < effective:
        raise Invalid({"expires_on": ["Must not be before effective_on (or issued_on)."]})
    return issued, effective, expires


def _certification_for_create(session: Session, certification_id: uuid.UUID) -> Certification:
    cert = session.get(Certification, certification_id)
    if cert is None:
        raise Invalid({"certification_id": ["No certification with this id."]})
    if cert.archived_at is not None:
        raise Invalid({"certification_id": ["This certification is archived."]})
    return cert


def _refuse_second_live(
    session: Session, certification_id: uuid.UUID, subject_id: uuid.UUID
) -> None:
    existing = session.scalar(
        select(Assignment.id).where(
            Assignment.certification_id == certification_id,
            Assignment.subject_id == subject_id,
            Assignment.revoked_at.is_(None),
        )
    )
    if existing is not None:
        raise _live_conflict(existing)


def _live_conflict(existing: uuid.UUID | None = None) -> Conflict:
    errors = {"assignment_id": [str(existing)]} if existing else {}
    return Conflict("This subject already holds a live assignment of this certification.", errors)


def _refuse_going_back(assignment: Assignment, effective: date | None) -> None:
    """A renewal starts a later cycle: going back in time is a correction (PATCH), not one."""
    current = assignment.effective_on or assignment.issued_on
    if current is None or effective is None or effective >= current:
        return
    raise Conflict(
        f"The current cycle is effective from {current.isoformat()} (issued "
        f"{_iso(assignment.issued_on)}, expires {_iso(assignment.expires_on)}); a renewal "
        f"cannot start before it (effective_on {effective.isoformat()}). To correct the "
        f"current cycle's dates, use PATCH /assignments/{assignment.id}.",
        {"effective_on": [f"Must be on or after {current.isoformat()}."]},
    )


def _iso(value: date | None) -> str:
    return value.isoformat() if value is not None else "never"


def refuse_revoked(assignment: Assignment) -> None:
    if assignment.revoked_at is not None:
        raise Conflict("This assignment is revoked; assign the certification anew instead.")
