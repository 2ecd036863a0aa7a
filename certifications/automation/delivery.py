"""Delivering one notification: claim it, then record the outcome of its send.

At-least-once with dedupe. The claim (`pending → sending`, attempts + 1) commits before anything
leaves, so two workers never send the same row at once. A worker killed after sending but before
marking leaves the row `sending`; once its lease expires another worker sends it again, with the
same `Message-ID` (email) or `X-Delivery-Id` (webhook) so receivers can drop the duplicate.
What is sent is `automation.messages`; how, `automation.transports`; the three short units of
work around them, `workers.delivery`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from certifications.assignments.models import Assignment
from certifications.automation.messages import Outgoing
from certifications.automation.models import Notification
from certifications.catalog.models import Certification
from certifications.directory.models import SUBJECT_MODELS
from infra.context import require_org_id
from infra.settings import Settings
from tenancy.keys import tenant_join
from tenancy.models import Organization
from tenancy.organizations import org_today

LEASE = timedelta(minutes=5)  # a `sending` row older than this belongs to a dead worker


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_ms: int = 30_000
    max_ms: int = 15 * 60_000

    def delay_ms(self, attempts: int) -> int:
        """Exponential: base, 2·base, 4·base, … capped at max_ms."""
        return int(min(self.max_ms, self.base_ms * 2 ** max(attempts - 1, 0)))


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.notification_max_attempts,
        base_ms=settings.notification_retry_base_ms,
        max_ms=settings.notification_retry_max_ms,
    )


# --- the state machine every sent row shares (notifications, digests, report runs) ------------
# `pending → sending` (attempts + 1, claimed_at) → `sent`, or back to `pending` / `failed`.


def claim_row(session: Session, model: Any, row_id: uuid.UUID, now: datetime) -> bool:
    """Take the row for sending (conditional UPDATE: one winner; a `sending` row whose lease
    expired belongs to a dead worker)."""
    result = session.execute(
        update(model)
        .where(
            model.id == row_id,
            or_(
                model.status == "pending",
                and_(model.status == "sending", model.claimed_at < now - LEASE),
            ),
        )
        .values(status="sending", attempts=model.attempts + 1, claimed_at=now, updated_at=now),
        execution_options={"synchronize_session": False},
    )
    return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def record_sent(
    session: Session, model: Any, row_id: uuid.UUID, now: datetime, **extra: Any
) -> None:
    session.execute(
        update(model)
        .where(model.id == row_id, model.status != "sent")
        .values(status="sent", sent_at=now, last_error=None, updated_at=now, **extra),
        execution_options={"synchronize_session": False},
    )


def record_failure(
    session: Session,
    model: Any,
    row_id: uuid.UUID,
    attempts: int,
    error: str,
    now: datetime,
    policy: RetryPolicy,
) -> int | None:
    """Back to `pending` with the error (returns the retry delay), or `failed` when exhausted
    (None). Only the claim of `attempts` records: a newer claim owns the row otherwise."""
    final = attempts >= policy.max_attempts
    session.execute(
        update(model)
        .where(model.id == row_id, model.status == "sending", model.attempts == attempts)
        .values(
            status="failed" if final else "pending",
            last_error=error[:2000],
            claimed_at=None,
            updated_at=now,
        ),
        execution_options={"synchronize_session": False},
    )
    return None if final else policy.delay_ms(attempts)


def claim(session: Session, notification_id: uuid.UUID, now: datetime) -> Outgoing | None:
    """Take the row for sending (one winner) and read what its message names; None if nothing
    to send."""
    org_id = require_org_id()
    if not claim_row(session, Notification, notification_id, now):
        return None
    # One round trip for the row and what the message names (the FKs guarantee all exist).
    note, assignment, cert, org = session.execute(
        select(Notification, Assignment, Certification, Organization)
        .join(Assignment, tenant_join(Assignment, Notification, "assignment_id"))
        .join(Certification, tenant_join(Certification, Notification, "certification_id"))
        .join(Organization, Organization.id == Notification.org_id)
        .where(Notification.id == notification_id)
        .execution_options(populate_existing=True)
    ).one()
    if assignment.cycle != note.cycle:  # renewed since: the reminder is moot
        note.status, note.last_error, note.claimed_at = "cancelled", "superseded by a renewal", None
        session.flush()
        return None
    subject = session.get(SUBJECT_MODELS[assignment.subject_type], assignment.subject_id)
    zone = ZoneInfo(org.timezone)
    return Outgoing(
        notification_id=note.id,
        org_id=org_id,
        org_name=org.name,
        attempts=note.attempts,
        channel=note.channel,
        recipient=note.recipient,
        trigger=note.trigger,
        cycle=note.cycle,
        triggered_on=note.triggered_on,
        today=org_today(org.timezone, now),
        timezone=org.timezone,
        assignment_id=assignment.id,
        status=assignment.status,
        issued_on=assignment.issued_on,
        expires_on=assignment.expires_on,
        revoked_on=assignment.revoked_at.astimezone(zone).date() if assignment.revoked_at else None,
        revoked_reason=assignment.revoked_reason,
        certification_id=cert.id,
        certification_name=cert.name,
        subject_type=assignment.subject_type,
        subject_id=assignment.subject_id,
        subject_name=subject.name
        if subject is not None
        else f"{assignment.subject_type} (deleted)",
        webhook_url=org.webhook_url,
        webhook_secret=org.webhook_secret,
        detail=note.detail,
    )


def mark_sent(session: Session, out: Outgoing, via: str, now: datetime) -> None:
    record_sent(session, Notification, out.notification_id, now, delivered_via=via)


def mark_failure(
    session: Session, out: Outgoing, error: str, now: datetime, policy: RetryPolicy
) -> int | None:
    """Back to `pending` with the error (returns the retry delay), or `failed` when exhausted."""
    return record_failure(
        session, Notification, out.notification_id, out.attempts, error, now, policy
    )


def mark_exhausted(session: Session, notification_id: uuid.UUID, error: str, now: datetime) -> None:
    """`failed` for good: the retries ran out before a failure could be recorded."""
    n = Notification
    session.execute(
        update(n)
        .where(
            n.id == notification_id,
            n.status.in_(("pending", "sending")),
        )
        .values(status="failed", last_error=error[:2000], claimed_at=None, updated_at=now),
        execution_options={"synchronize_session": False},
    )
