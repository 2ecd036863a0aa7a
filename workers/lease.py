"""Leases: a worker running a message holds its outbox row, and says so while it lives.

Before an actor runs, `claim` sets the row's `lease_expires_at` (now + `JOB_LEASE_SECONDS`) and
`claimed_by` (the Dramatiq message id) — unless the row is already `done`/`dead` (a duplicate
delivery: skipped) or held by another delivery whose lease is still running (also skipped:
that worker finishes it, or dies and the sweep sends it again). One `Heartbeat` thread per
worker process renews the leases of every row its threads hold, every third of the lease, in
one UPDATE. A worker that dies (SIGKILL, OOM, lost node) stops renewing: once its leases run
out, the outbox sweep (`jobs.relay.sweep`, every 5 s) sends those messages again.

A heartbeat that misses its beat (database briefly away) costs at most a duplicate run, which
jobs are built to tolerate.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from contextvars import ContextVar
from enum import Enum

from sqlalchemy import or_, select, update

from infra import context
from infra import database as db
from jobs import relay
from jobs.models import OutboxMessage

log = logging.getLogger("certs.worker.lease")

# The outbox row the current thread's message came from (None outside a relayed message).
_current: ContextVar[uuid.UUID | None] = ContextVar("outbox_row", default=None)


def current_outbox_id() -> uuid.UUID | None:
    """The outbox row of the message this thread runs: its failure will be retried."""
    return _current.get()


def set_current(outbox_id: uuid.UUID | None) -> None:
    _current.set(outbox_id)


class Claim(Enum):
    CLAIMED = "claimed"
    FINISHED = "finished"  # done or dead: a duplicate delivery
    HELD = "held"  # another delivery holds a live lease
    UNKNOWN = "unknown"  # no such row (a message not from the outbox)


def claim(outbox_id: uuid.UUID, message_id: str) -> Claim:
    now = db.utcnow()
    row = OutboxMessage
    with context.platform(), db.new_session() as session:
        claimed = session.execute(
            update(row)
            .where(
                row.id == outbox_id,
                row.status.in_(relay.SENDABLE),
                or_(
                    row.lease_expires_at.is_(None),
                    row.lease_expires_at < now,
                    row.claimed_by == message_id,
                ),
            )
            .values(lease_expires_at=now + relay.policy().lease, claimed_by=message_id)
        ).rowcount  # type: ignore[attr-defined]
        found = None if claimed else session.scalar(select(row.status).where(row.id == outbox_id))
        session.commit()
    if claimed:
        return Claim.CLAIMED
    if found is None:
        return Claim.UNKNOWN
    return Claim.FINISHED if found in ("done", "dead") else Claim.HELD


def renew(ids: list[uuid.UUID]) -> int:
    """Push the leases of these rows a lease into the future (still `sent`: not finished)."""
    if not ids:
        return 0
    with context.platform(), db.new_session() as session:
        renewed = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), OutboxMessage.status == "sent")
            .values(lease_expires_at=db.utcnow() + relay.policy().lease)
        ).rowcount  # type: ignore[attr-defined]
        session.commit()
    return int(renewed or 0)


class Heartbeat:
    """The rows this process's worker threads hold, and the thread renewing their leases."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[uuid.UUID, int] = {}
        self._thread: threading.Thread | None = None

    def hold(self, outbox_id: uuid.UUID) -> None:
        with self._lock:
            self._held[outbox_id] = self._held.get(outbox_id, 0) + 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="outbox-lease-heartbeat", daemon=True
                )
                self._thread.start()

    def drop(self, outbox_id: uuid.UUID) -> None:
        with self._lock:
            left = self._held.get(outbox_id, 0) - 1
            if left > 0:
                self._held[outbox_id] = left
            else:
                self._held.pop(outbox_id, None)

    def held(self) -> list[uuid.UUID]:
        with self._lock:
            return list(self._held)

    def beat(self) -> int:
        """Renew every held lease now (the thread's loop; tests call it directly)."""
        return renew(self.held())

    def _run(self) -> None:
        stop = threading.Event()  # never set: a daemon thread, gone with its process
        while not stop.wait(relay.policy().lease.total_seconds() / 3):
            try:
                self.beat()
            except Exception:  # the database is away: try again at the next beat
                log.warning("lease heartbeat failed", exc_info=True)


HEARTBEAT = Heartbeat()
