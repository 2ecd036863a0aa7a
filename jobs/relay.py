"""Relay outbox rows to the broker: right after the commit that wrote them, and by a sweep.

Each row is locked (`FOR UPDATE SKIP LOCKED` on PostgreSQL) while it is sent, so two relays or
sweepers never send the same row at once. A broker outage leaves rows `pending` with the error;
the sweep sends them when the broker is back. Rows sent but not reported done within
`RESEND_AFTER` (a message lost by a Redis crash) are sent again; actors are idempotent.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import dramatiq
from sqlalchemy import event, or_, select, update
from sqlalchemy.orm import Session

from infra import context
from infra import database as db
from jobs.models import OutboxMessage
from jobs.outbox import PENDING_KEY

log = logging.getLogger("certs.outbox")

SWEEP_MIN_AGE = timedelta(seconds=5)
RESEND_AFTER = timedelta(minutes=15)
SWEEP_BATCH = 500


@event.listens_for(Session, "after_commit")
def _relay_after_commit(session: Session) -> None:
    ids = session.info.pop(PENDING_KEY, None)
    if ids:
        relay(ids)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(PENDING_KEY, None)


def relay(ids: Iterable[uuid.UUID]) -> int:
    """Send these pending rows now (called after the commit that wrote them)."""
    ids = list(ids)
    stmt = select(OutboxMessage).where(OutboxMessage.id.in_(ids), OutboxMessage.status == "pending")
    return _send_locked(stmt)


def sweep(now: Any = None) -> int:
    """Send rows the immediate relay missed (broker down, process died) or that got lost."""
    now = now or db.utcnow()
    stmt = (
        select(OutboxMessage)
        .where(
            or_(
                (OutboxMessage.status == "pending")
                & (OutboxMessage.created_at <= now - SWEEP_MIN_AGE),
                (OutboxMessage.status == "sent") & (OutboxMessage.sent_at <= now - RESEND_AFTER),
            )
        )
        .order_by(OutboxMessage.created_at)
        .limit(SWEEP_BATCH)
    )
    return _send_locked(stmt)


def backlog() -> dict[str, Any]:
    """Pending count and the age of the oldest pending row (for /readyz and /metrics)."""
    from sqlalchemy import func

    with context.platform(), db.new_session() as session:
        count, oldest = session.execute(
            select(func.count(), func.min(OutboxMessage.created_at)).where(
                OutboxMessage.status.in_(("pending", "sent"))
            )
        ).one()
    return {"count": count, "oldest": oldest}


def _send_locked(stmt: Any) -> int:
    broker = dramatiq.get_broker()
    sent: list[uuid.UUID] = []
    with context.platform(), db.new_session() as session:
        rows = session.scalars(stmt.with_for_update(skip_locked=True)).all()
        for row in rows:
            try:
                broker.enqueue(_message(broker, row))
            except Exception as exc:  # broker down or actor unknown: keep the row, say why
                log.warning("outbox relay failed for %s: %r", row.id, exc)
                session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id == row.id)
                    .values(attempts=OutboxMessage.attempts + 1, last_error=repr(exc)[:2000])
                )
                continue
            sent.append(row.id)
        if sent:
            # Conditional: a fast worker may already have marked the row done (no row locks on
            # SQLite), and done must never go back to sent.
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(sent), OutboxMessage.status.in_(("pending", "sent")))
                .values(status="sent", sent_at=db.utcnow(), attempts=OutboxMessage.attempts + 1)
            )
        session.commit()
    return len(sent)


def _message(broker: dramatiq.Broker, row: OutboxMessage) -> dramatiq.Message[Any]:
    actor = broker.get_actor(row.actor_name)
    return dramatiq.Message(
        queue_name=actor.queue_name,
        actor_name=row.actor_name,
        args=(),
        kwargs=dict(row.payload),
        options={"outbox_id": str(row.id), "request_id": row.request_id},
    )
