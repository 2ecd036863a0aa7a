"""The automation half of an org's tick: evaluate rules (tasks + notifications), queue deliveries.

Runs after the tick recomputed the org's statuses, so rules read stored statuses that are
current. Deliveries go through the outbox, one message per notification; `enqueued_at` keeps a
tick from queueing the same row twice. A row whose worker died mid-send (its `sending` lease
expired) is queued again; retries of a failed send are Dramatiq's (see `workers.actors`).
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
from infra import context
from jobs.outbox import request_job
from tenancy.organizations import org_today

ENQUEUE_BATCH = 2000


def evaluate_org(
    session: Session, org_id: uuid.UUID, now: datetime, timezone: str
) -> dict[str, Any]:
    """Tasks and notifications for one org on its local today (flushes only)."""
    today = org_today(timezone, now)
    return {
        "tasks": evaluate_task_rules(session, org_id, today, now),
        "notifications": evaluate_rules(session, org_id, today, now),
    }


def enqueue_deliveries(session: Session, now: datetime) -> int:
    """Queue a delivery message for every deliverable notification not already queued."""
    n = Notification.__table__
    org_id = context.require_org_id()
    due = or_(
        and_(
            n.c.status == "pending",
            n.c.enqueued_at.is_(None),
        ),
        and_(n.c.status == "sending", n.c.claimed_at < now - LEASE),
    )
    ids = list(
        session.scalars(
            select(n.c.id)
            .where(n.c.org_id == org_id, due)
            .order_by(n.c.created_at)
            .limit(ENQUEUE_BATCH)
        )
    )
    if not ids:
        return 0
    session.execute(update(n).where(n.c.org_id == org_id, n.c.id.in_(ids)).values(enqueued_at=now))
    for notification_id in ids:
        request_job(session, "deliver_notification", notification_id=notification_id)
    return len(ids)
