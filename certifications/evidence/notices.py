"""The review queue's notices, through the notification log's exactly-once machinery.

One row per (assignment, `<trigger>:<submission id>`, cycle, channel, recipient) — the same
unique key rule notifications use, so a retried request or a second call creates nothing
twice — queued for delivery through the outbox like the tick queues rule notifications.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from certifications.assignments.models import Assignment
from certifications.automation.models import Notification
from certifications.directory.models import Employee
from certifications.evidence.models import Submission
from certifications.vocabulary import SUBMISSION_PENDING
from infra.context import require_org_id
from jobs.outbox import request_job
from tenancy.models import Organization
from tenancy.organizations import org_today


def recipients(
    session: Session, submission: Submission, assignment: Assignment, trigger: str
) -> list[tuple[str, str]]:
    """(address, how it was chosen): reviewers for a pending submission, else the submitter
    (the worker who sent it, or the assignment's employee); the admins when nobody has one."""
    org = session.get(Organization, require_org_id())
    assert org is not None
    admins = [(a, "admins") for a in org.admin_emails or []]
    if trigger == SUBMISSION_PENDING:
        reviewers = [(a, "reviewers") for a in org.reviewer_emails or []]
        return reviewers or admins
    employee_id = submission.submitter_employee_id
    if employee_id is None and assignment.subject_type == "employee":
        employee_id = assignment.subject_id
    employee = session.get(Employee, employee_id) if employee_id is not None else None
    if employee is not None and employee.email:
        return [(employee.email, "holder")]
    return [(a, "holder_fallback_admins") for a, _ in admins]


def notify(
    session: Session,
    submission: Submission,
    assignment: Assignment,
    trigger: str,
    now: datetime,
    *,
    detail: str | None = None,
) -> int:
    """Create and queue the trigger's notices (once each); returns how many were new."""
    org = session.get(Organization, require_org_id())
    assert org is not None
    today = org_today(org.timezone, now)
    created = 0
    for address, source in dict.fromkeys(recipients(session, submission, assignment, trigger)):
        note = Notification(
            id=uuid.uuid4(),
            assignment_id=assignment.id,
            certification_id=assignment.certification_id,
            rule_key=f"{trigger}:{submission.id}",
            trigger=trigger,
            cycle=assignment.cycle,
            channel="email",
            recipient=address,
            recipient_source=source,
            triggered_on=today,
            status="pending",
            attempts=0,
            detail=detail,
            enqueued_at=now,
            created_at=now,
            updated_at=now,
        )
        try:
            with session.begin_nested():
                session.add(note)
                session.flush()
        except IntegrityError:
            continue  # already notified
        request_job(session, "deliver_notification", notification_id=note.id)
        created += 1
    return created
