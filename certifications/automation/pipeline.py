"""The automation half of an org's tick: evaluate rules (tasks + notifications), queue deliveries.

Runs after the tick recomputed the org's statuses, so rules read stored statuses that are
current. Deliveries go through the outbox, one message per notification; `enqueued_at`, stamped
by the same conditional UPDATE that picks the rows, keeps ticks (also concurrent ones) from
queueing the same row twice. A row whose worker died mid-send (its `sending` lease expired) is
queued again, once per claim; retries of a failed send are Dramatiq's (see `workers.actors`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from certifications.assignments.snooze import end_snoozes
from certifications.automation.delivery import LEASE
from certifications.automation.digests import digest_bound, snoozed
from certifications.automation.models import Notification
from certifications.automation.notifications import evaluate_rules
from certifications.automation.tasks import evaluate_task_rules
from certifications.automation.withdraw import withdraw_out_of_compliance
from infra.context import require_org_id
from jobs.outbox import request_job
from tenancy.models import Organization
from tenancy.organizations import org_today

ENQUEUE_BATCH = 2000


def evaluate_org(
    session: Session, org_id: uuid.UUID, now: datetime, timezone: str
) -> dict[str, Any]:
    """Tasks and notifications for one org on its local today (flushes only)."""
    today = org_today(timezone, now)
    withdrawn = withdraw_out_of_compliance(session, org_id, now)  # exempt, or the subject left
    return {
        "withdrawn": withdrawn,
        "snoozes_ended": end_snoozes(session, org_id, today, now),
        "tasks": evaluate_task_rules(session, org_id, today, now),
        "notifications": evaluate_rules(session, org_id, today, now),
    }


def enqueue_deliveries(session: Session, now: datetime) -> int:
    """Queue a delivery message for every deliverable notification not already queued.

    The rows are claimed by one conditional `UPDATE … RETURNING` (on PostgreSQL over a
    `FOR UPDATE SKIP LOCKED` pick): only the ids this call stamped get a message, so concurrent
    ticks of one org queue each notification once between them.
    """
    n = Notification
    org = session.get(Organization, require_org_id())
    assert org is not None  # noqa: S101 - a tenant context names an existing org
    today = org_today(org.timezone, now)
    due = or_(
        and_(
            n.status == "pending",
            n.enqueued_at.is_(None),
            # Digest recipients' reminders leave with their digest (automation.digests); a
            # snoozed assignment's wait for its date.
            ~digest_bound(n, org.digest_frequency),
            ~snoozed(n, today),
        ),
        # A worker died mid-send (lease expired) and the row was not queued since its claim.
        and_(
            n.status == "sending",
            n.claimed_at < now - LEASE,
            or_(n.enqueued_at.is_(None), n.enqueued_at <= n.claimed_at),
        ),
    )
    pick = (
        select(n.id)
        .where(due)
        .order_by(n.created_at)
        .limit(ENQUEUE_BATCH)
        .with_for_update(skip_locked=True)
    )
    claimed = session.execute(
        update(n)
        .where(n.id.in_(pick.scalar_subquery()), due)
        .values(enqueued_at=now)
        .returning(n.id, n.created_at),
        execution_options={"synchronize_session": False},
    ).all()
    for notification_id, _created in sorted(claimed, key=lambda row: (row[1], row[0])):
        request_job(session, "deliver_notification", notification_id=notification_id)
    return len(claimed)
