"""Resending notifications: a failed or cancelled one goes back to `pending`, attempts reset.

The row is queued again through the outbox (its delivery message leaves after commit), exactly as
the tick queues a new one: `enqueued_at` is stamped by the same statement that picks the rows, so
a tick running meanwhile cannot queue it a second time. Delivery re-checks the cycle at claim
time: a reminder of a cycle a renewal superseded is cancelled again rather than sent.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from certifications.assignments.schedule import request_tick
from certifications.automation.models import Notification
from certifications.vocabulary import RETRYABLE_NOTIFICATION_STATUSES
from infra.database import get_or_not_found
from infra.errors import Conflict
from jobs.outbox import request_job

DELIVER = "deliver_notification"
# Bulk resends queue at most this many per request; the tick queues the rest (still `pending`).
RETRY_BATCH = 2000


def _reset(now: datetime) -> dict[str, object]:
    return {
        "status": "pending",
        "attempts": 0,
        "claimed_at": None,
        "enqueued_at": now,
        "updated_at": now,
        # Resent on its own: a digest it was in has left (or failed) already.
        "digest_id": None,
    }


def retry_notification(session: Session, notification_id: uuid.UUID, now: datetime) -> Notification:
    """Queue one failed or cancelled notification again (409 in any other state)."""
    note = get_or_not_found(session, Notification, notification_id, "notification")
    n = Notification
    result = session.execute(
        update(n)
        .where(
            n.id == note.id,
            n.status.in_(RETRYABLE_NOTIFICATION_STATUSES),
        )
        .values(**_reset(now)),
        execution_options={"synchronize_session": False},
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(
            f"Only a failed or cancelled notification can be sent again; this one is "
            f"{note.status}.",
            {"status": [note.status]},
        )
    request_job(session, DELIVER, notification_id=note.id)
    session.refresh(note)
    return note


def retry_notifications(session: Session, status: str, since: datetime, now: datetime) -> int:
    """Queue again every notification in `status` that reached it at or after `since`."""
    n = Notification
    ids = (
        session.execute(
            update(n)
            .where(n.status == status, n.updated_at >= since.astimezone(UTC))
            .values(**(_reset(now) | {"enqueued_at": None}))
            .returning(n.id),
            execution_options={"synchronize_session": False},
        )
        .scalars()
        .all()
    )
    # The first batch leaves now, the rest with the org's next tick (`enqueue_deliveries`).
    queued = ids[:RETRY_BATCH]
    if queued:
        session.execute(
            update(n).where(n.id.in_(queued)).values(enqueued_at=now),
            execution_options={"synchronize_session": False},
        )
    for notification_id in queued:
        request_job(session, DELIVER, notification_id=notification_id)
    if len(ids) > len(queued):
        request_tick(session)
    return len(ids)
