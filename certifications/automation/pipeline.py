"""The periodic automation steps: evaluate rules (tasks + notifications) and queue deliveries.

Each org is evaluated in its own tenant transaction on its own local "today". Deliveries go
through the outbox, one message per notification; `enqueued_at` keeps a tick from queueing
the same row twice, and rows whose message got lost (or whose worker died mid-send) are
queued again after `REQUEUE_AFTER`.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from certifications.assignments.status import org_today
from certifications.automation.delivery import LEASE
from certifications.automation.models import Notification
from certifications.automation.notifications import evaluate_rules
from certifications.automation.tasks import evaluate_task_rules
from infra import context
from infra import database as db
from jobs.outbox import request_job
from tenancy.models import Organization

REQUEUE_AFTER = timedelta(minutes=15)
ENQUEUE_BATCH = 2000


def organizations(org_id: uuid.UUID | None) -> list[tuple[uuid.UUID, str]]:
    """(id, timezone) of one org or of every org with the HSE module on."""
    with context.platform(), db.new_session() as session:
        stmt = select(Organization.id, Organization.timezone, Organization.modules)
        if org_id is not None:
            stmt = stmt.where(Organization.id == org_id)
        return [(i, tz) for i, tz, mods in session.execute(stmt) if "hse" in (mods or [])]


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
            or_(n.c.enqueued_at.is_(None), n.c.enqueued_at < now - REQUEUE_AFTER),
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


def rules_step(now: datetime, org_id: uuid.UUID | None) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for oid, tz in organizations(org_id):
        with context.tenant(oid), db.new_session() as session:
            report[str(oid)] = evaluate_org(session, oid, now, tz)
            session.commit()
    return report


def deliver_step(now: datetime, org_id: uuid.UUID | None) -> dict[str, Any]:
    queued = 0
    for oid, _tz in organizations(org_id):
        with context.tenant(oid), db.new_session() as session:
            queued += enqueue_deliveries(session, now)
            session.commit()
    return {"queued": queued}
