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

from certifications.automation.delivery import LEASE
from certifications.automation.models import Notification
from certifications.automation.notifications import evaluate_rules
from certifications.automation.tasks import evaluate_task_rules
from certifications.automation.withdraw import withdraw_out_of_compliance
from infra import context
from jobs.outbox import request_job
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
        "tasks": evaluate_task_rules(session, org_id, today, now),
        "notifications": evaluate_rules(session, org_id, today, now),
    }


def enqueue_deliveries(session: Session, now: datetime) -> int:
    """Queue a delivery message for every deliverable notification not already queued.

    The rows are claimed by one conditional `UPDATE … RETURNING` (on PostgreSQL over a
    `FOR UPDATE SKIP LOCKED` pick): only the ids this call stamped get a message, so concurrent
    ticks of one org queue each notification once between them.
    """
    n = Notification.__table__
    org_id = context.require_org_id()
    due = or_(
        and_(n.c.status == "pending", n.c.enqueued_at.is_(None)),
        # A worker died mid-send (lease expired) and the row was not queued since its claim.
        and_(
            n.c.status == "sending",
            n.c.claimed_at < now - LEASE,
            or_(n.c.enqueued_at.is_(None), n.c.enqueued_at <= n.c.claimed_at),
        ),
    )
    pick = (
        select(n.c.id)
        .where(n.c.org_id == org_id, due)
        .order_by(n.c.created_at)
        .limit(ENQUEUE_BATCH)
        .with_for_update(skip_locked=True)
    )
    claimed = session.execute(
        update(n)
        .where(n.c.org_id == org_id, n.c.id.in_(pick.scalar_subquery()), due)
        .values(enqueued_at=now)
        .returning(n.c.id, n.c.created_at)
    ).all()
    for notification_id, _created in sorted(claimed, key=lambda row: (row[1], row[0])):
        request_job(session, "deliver_notification", notification_id=notification_id)
    return len(claimed)
