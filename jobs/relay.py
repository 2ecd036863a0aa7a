"""Relay outbox rows to the broker: right after the commit that wrote them, and by a sweep.

Each row is locked (`FOR UPDATE SKIP LOCKED` on PostgreSQL) while it is sent, so two relays or
sweepers never send the same row at once. A broker outage leaves rows `pending` with the error;
the sweep sends them when the broker is back. Rows sent but not reported done within
`RESEND_AFTER` (a message lost by a Redis crash) are sent again; actors are idempotent.

`install_outbox_relay(factory, broker, background=...)` (called by `runtime.bootstrap`) hooks
the after-commit relay onto one session factory; nothing is installed by importing this module.
With a network broker (Redis) the ids go to a `Publisher`: one background thread per process
that sends them, so a slow or hung broker never holds the request (or job) that committed them.
The in-process broker publishes inline (a memory append cannot hang).

Whatever fails after a commit is logged, never raised: the change is committed, so its request
must not answer an error, and the rows stay `pending` for the sweep.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import dramatiq
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
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
# Errors meaning the broker cannot be reached right now (refused, reset, timed out).
BROKER_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


class Publisher:
    """Publishes committed outbox ids from one background thread of this process.

    `submit` only appends to a list (never blocks on the broker or the database); the thread
    relays what has accumulated, `SWEEP_BATCH` ids at a time. Ids beyond `MAX_QUEUED` are left
    to the sweep, as are ids not yet sent when the process exits (after `flush` at exit, up to
    `EXIT_FLUSH_S`). The thread starts on first use, again in a forked child.
    """

    MAX_QUEUED = 50_000
    EXIT_FLUSH_S = 2.0

    def __init__(self, broker: dramatiq.Broker) -> None:
        self.broker = broker
        self._reset()
        os.register_at_fork(after_in_child=self._reset)
        atexit.register(self.flush, self.EXIT_FLUSH_S)

    def _reset(self) -> None:
        # A forked child gets a copy of the parent's lock (maybe held) and list, not its thread.
        self._cond = threading.Condition()
        self._queued: list[uuid.UUID] = []
        self._busy = False
        self._thread: threading.Thread | None = None

    def submit(self, ids: Iterable[uuid.UUID]) -> None:
        with self._cond:
            if len(self._queued) >= self.MAX_QUEUED:
                log.warning("outbox publisher backlog full: the sweep will send these rows")
                return
            self._queued.extend(ids)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="outbox-publisher", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far was relayed (tests, process exit)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queued or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queued:
                    self._cond.wait()
                batch = self._queued[:SWEEP_BATCH]
                del self._queued[:SWEEP_BATCH]
                self._busy = True
            try:
                relay(batch, broker=self.broker)
            except Exception:  # the database failed us: the rows stay pending for the sweep
                log.exception("outbox publisher failed; the sweep will send %d row(s)", len(batch))
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()


def install_outbox_relay(
    factory: sessionmaker[Session], broker: dramatiq.Broker, *, background: bool = False
) -> Publisher | None:
    """After each commit of this factory's sessions, publish the jobs that commit requested:
    from a background `Publisher` (returned) when `background`, else inline."""
    publisher = Publisher(broker) if background else None

    def _relay_after_commit(session: Session) -> None:
        session.info.pop(ONCE_KEY, None)
        ids = session.info.pop(PENDING_KEY, None)
        if not ids:
            return
        try:
            if publisher is not None:
                publisher.submit(ids)
            else:
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
    return publisher


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
        unreachable: Exception | None = None
        for row in rows:
            try:
                if unreachable is not None:
                    raise unreachable
                broker.enqueue(_message(broker, row))
            except Exception as exc:  # broker down or actor unknown: keep the row, say why
                if unreachable is None:
                    log.warning("outbox relay failed for %s: %r", row.id, exc)
                # A broker that did not answer would make every further row wait as long
                # again (seconds each, while holding these rows' locks): leave them all to
                # the next sweep.
                if isinstance(exc, BROKER_UNREACHABLE):
                    unreachable = exc
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
