"""Submissions and the review queue: a record of a cycle (dates, form answers, documents) that
waits for a reviewer when the certification asks for review, or always when a worker sent it.

Approval records the cycle through `renew_assignment` (the lifecycle rules apply as for any
renewal), accepts the form answers and moves the documents onto the new cycle; rejection keeps
everything as it was and tells the submitter why. A pending submission never changes the
assignment's status: it only sets `pending_submission_id`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from certifications.assignments import service as assignments
from certifications.assignments.models import Assignment
from certifications.catalog import forms
from certifications.catalog.models import Certification
from certifications.catalog.service import get_certification
from certifications.evidence import notices
from certifications.evidence.documents import Upload, store_document
from certifications.evidence.models import Document, Submission
from certifications.evidence.storage import DocumentStore
from certifications.vocabulary import (
    SUBMISSION_APPROVED,
    SUBMISSION_PENDING,
    SUBMISSION_REJECTED,
)
from infra.database import get_or_not_found
from infra.errors import Conflict, Invalid

MAX_FILES = 10


def submit(
    session: Session,
    store: DocumentStore,
    assignment: Assignment,
    data: dict[str, Any],
    uploads: Sequence[Upload],
    *,
    actor: str,
    now: datetime,
    max_bytes: int,
    quota_bytes: int,
    employee_id: uuid.UUID | None = None,
) -> Submission:
    """A new submission for `assignment`: pending when sent by a worker (`employee_id`) or when
    the certification needs review; otherwise (an admin, no review) approved at once."""
    assignment = assignments.lock_assignment(session, assignment)
    if assignment.revoked_at is not None:
        raise Conflict("This assignment is revoked; nothing can be submitted for it.")
    if assignment.pending_submission_id is not None:
        raise Conflict(
            "A submission for this assignment is already waiting for review.",
            {"submission_id": [str(assignment.pending_submission_id)]},
        )
    if len(uploads) > MAX_FILES:
        raise Invalid({"file": [f"At most {MAX_FILES} files per submission."]})
    cert = get_certification(session, assignment.certification_id)
    _check_dates(data)
    answers = _clean_answers(cert, data.get("answers"))
    submission = Submission(
        id=uuid.uuid4(),
        assignment_id=assignment.id,
        cycle=assignment.cycle,
        status="pending",
        issued_on=data.get("issued_on"),
        effective_on=data.get("effective_on"),
        expires_on=data.get("expires_on"),
        answers=answers,
        notes=data.get("notes"),
        submitted_by=actor,
        submitter_employee_id=employee_id,
        created_at=now,
        updated_at=now,
    )
    try:
        with session.begin_nested():
            session.add(submission)
            session.flush()
    except IntegrityError as exc:  # a concurrent submission won (the lock makes this rare)
        raise Conflict("A submission for this assignment is already waiting for review.") from exc
    for upload in uploads:
        document, _created = store_document(
            session,
            store,
            assignment,
            upload,
            cycle=assignment.cycle,
            max_bytes=max_bytes,
            quota_bytes=quota_bytes,
            actor=actor,
            now=now,
            submission_id=submission.id,
        )
        document.submission_id = submission.id  # the same bytes sent again: now this one's
    assignment.pending_submission_id = submission.id
    session.flush()
    if employee_id is None and not cert.needs_review:
        return approve(session, submission, actor=actor, now=now)
    notices.notify(session, submission, assignment, SUBMISSION_PENDING, now)
    return submission


def approve(session: Session, submission: Submission, *, actor: str, now: datetime) -> Submission:
    """Record the submitted cycle as a renewal does, accept the answers, move the documents."""
    assignment = assignments.lock_assignment(
        session, assignments.get_assignment(session, submission.assignment_id)
    )
    submission = _pending(session, submission)
    dates = {k: getattr(submission, k) for k in ("issued_on", "effective_on", "expires_on")}
    data: dict[str, Any] = {k: v for k, v in dates.items() if v is not None}
    if submission.notes is not None:
        data["notes"] = submission.notes
    assignment = assignments.renew_assignment(session, assignment, data, actor=actor, now=now)
    if submission.answers:
        assignments.submit_form(session, assignment, submission.answers, actor=actor, now=now)
    session.execute(
        update(Document)
        .where(Document.submission_id == submission.id, Document.deleted_at.is_(None))
        .values(cycle=assignment.cycle, updated_at=now)
        .execution_options(synchronize_session="fetch")
    )
    _close(assignment, submission, "approved", actor, now)
    session.flush()
    notices.notify(session, submission, assignment, SUBMISSION_APPROVED, now)
    return submission


def reject(
    session: Session, submission: Submission, reason: str, *, actor: str, now: datetime
) -> Submission:
    """Refuse with a reason told to the submitter; the assignment stays as it was."""
    assignment = assignments.lock_assignment(
        session, assignments.get_assignment(session, submission.assignment_id)
    )
    submission = _pending(session, submission)
    submission.reason = reason
    _close(assignment, submission, "rejected", actor, now)
    session.flush()
    notices.notify(session, submission, assignment, SUBMISSION_REJECTED, now, detail=reason)
    return submission


def get_submission(session: Session, submission_id: uuid.UUID) -> Submission:
    return get_or_not_found(session, Submission, submission_id, "submission")


def queue_query(args: dict[str, Any]) -> tuple[Any, list[Any]]:
    """The review queue, oldest first. `location_id` selects the submissions for that
    location's own certifications (employees carry no location in the directory)."""
    stmt = select(Submission)
    if args.get("status"):
        stmt = stmt.where(Submission.status == args["status"])
    if args.get("assignment_id"):
        stmt = stmt.where(Submission.assignment_id == args["assignment_id"])
    if args.get("certification_id") or args.get("location_id"):
        stmt = stmt.join(
            Assignment,
            (Assignment.org_id == Submission.org_id) & (Assignment.id == Submission.assignment_id),
        )
        if args.get("certification_id"):
            stmt = stmt.where(Assignment.certification_id == args["certification_id"])
        if args.get("location_id"):
            stmt = stmt.where(
                Assignment.subject_type == "location",
                Assignment.subject_id == args["location_id"],
            )
    return stmt, [Submission.created_at, Submission.id]


def _pending(session: Session, submission: Submission) -> Submission:
    session.refresh(submission)  # after the assignment's lock: what the last reviewer wrote
    if submission.status != "pending":
        raise Conflict(f"This submission is already {submission.status}.")
    return submission


def _close(
    assignment: Assignment, submission: Submission, status: str, actor: str, now: datetime
) -> None:
    submission.status = status
    submission.reviewed_by = actor
    submission.reviewed_at = now
    submission.updated_at = now
    if assignment.pending_submission_id == submission.id:
        assignment.pending_submission_id = None
        assignment.updated_at = now


def _check_dates(data: dict[str, Any]) -> None:
    issued: date | None = data.get("issued_on")
    effective: date | None = data.get("effective_on")
    expires: date | None = data.get("expires_on")
    if issued is None and (effective is not None or expires is not None):
        given = "effective_on" if effective is not None else "expires_on"
        raise Invalid({"issued_on": [f"Required when {given} is given."]})
    start = effective or issued
    if expires is not None and start is not None and expires < start:
        raise Invalid({"expires_on": ["Must not be before effective_on (or issued_on)."]})


def _clean_answers(cert: Certification, answers: Any) -> dict[str, Any] | None:
    fields = forms.form_fields(cert.form)
    if not fields:
        if answers:
            raise Invalid({"answers": ["This certification has no form."]})
        return None
    if answers is None:
        if cert.forms_required:
            raise Invalid({"answers": ["This certification's form must be filled in."]})
        return None
    if not isinstance(answers, dict):
        raise Invalid({"answers": ["Must be an object of the form's answers."]})
    return forms.validate_answers(fields, answers)
