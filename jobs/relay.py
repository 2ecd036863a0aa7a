"""Relay outbox rows to the broker: right after the commit that wrote them, and by a sweep.

Each row is locked (`FOR UPDATE SKIP LOCKED` on PostgreSQL) while it is sent, so two relays or
sweepers never send the same row at once. A broker outage leaves rows `pending` with the error;
the sweep sends them when the broker is back. Rows sent but not reported done within
`RESEND_AFTER` (a message lost by a Redis crash) are sent again; actors are idempotent.

`install_outbox_relay(factory, broker)` (called by `runtime.bootstrap`) hooks the after-commit
relay onto one session factory; nothing is installed by importing this module.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import dramatiq
from sqlalchemy import event, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from infra import context
from infra import database as db
from jobs.catalog import kind_of
from jobs.models import OutboxMessage
from jobs.outbox import ONCE_KEY, PENDING_KEY

log = logging.getLogger("certs.outbox")

SWEEP_MIN_AGE = timedelta(seconds=5)
RESEND_AFTER = timedelta(minutes=15)
SWEEP_BATCH = 500


def install_outbox_relay(factory: sessionmaker[Session], broker: dramatiq.Broker) -> None:
    """After each commit of this factory's sessions, publish the jobs that commit requested."""

    def _relay_after_commit(session: Session) -> None:
        session.info.pop(ONCE_KEY, None)
        ids = session.info.pop(PENDING_KEY, None)
        if not ids:
            return
        try:
            relay(ids, broker=broker)
        except Exception:
            # The transaction is committed: nothing after it may turn into the caller's error
            # (a request answering 503 for a saved row). The sweep sends the rows later.
            log.exception(
                "outbox relay after commit failed; the sweep will send %d row(s)", len(ids)
            )

    def _forget_after_rollback(session: Session) -> None:
        session.info.pop(ONCE_KEY, None)
        session.info.pop(PENDING_KEY, None)

    event.listen(factory, "after_commit", _relay_after_commit)
    event.listen(factory, "after_rollback", _forget_after_rollback)


def relay(ids: Iterable[uuid.UUID], *, broker: dramatiq.Broker | None = None) -> int:
    """Send these pending rows now (called after the commit that wrote them)."""
    ids = list(ids)
    stmt = select(OutboxMessage).where(OutboxMessage.id.in_(ids), OutboxMessage.status == "pending")
    return _send_locked(stmt, broker or dramatiq.get_broker())


def sweep(now: Any = None, *, broker: dramatiq.Broker | None = None) -> int:
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
    return _send_locked(stmt, broker or dramatiq.get_broker())


def backlog() -> dict[str, Any]:
    """Pending count and the age of the oldest pending row (for /readyz and /metrics)."""
    with context.platform(), db.new_session() as session:
        count, oldest = session.execute(
            select(func.count(), func.min(OutboxMessage.created_at)).where(
                OutboxMessage.status.in_(("pending", "sent"))
            )
        ).one()
    return {"count": count, "oldest": oldest}


def _send_locked(stmt: Any, broker: dramatiq.Broker) -> int:
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
    queue_name = kind_of(row.actor_name).queue_name
    broker.declare_queue(queue_name)  # idempotent; a publish-only process declares no actors
    return dramatiq.Message(
        queue_name=queue_name,
        actor_name=row.actor_name,
        args=(),
        kwargs=dict(row.payload),
        options={"outbox_id": str(row.id), "request_id": row.request_id},
    )
