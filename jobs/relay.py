"""Relay outbox rows to the broker: right after the commit that wrote them, and by a sweep.

Each row is locked (`FOR UPDATE SKIP LOCKED` on PostgreSQL) while it is sent, so two relays or
sweepers never send the same row at once. A broker outage leaves rows `pending` with the error;
the sweep sends them when the broker is back.

The life of a row: `pending` → `sent` → `done`, or `failed` once Dramatiq's own retries ran
out (`workers.middleware`), which the sweep sends again after `RetryPolicy.delay` (1 min, 2, 4,
… capped at 1 h) until `RetryPolicy.window` after its first failure (24 h): then it is `dead`,
and its Job `failed` with the error. The sweep (`certs scheduler`, every 5 s) also sends again:

* a `sent` row whose lease ran out: a worker claimed it (`lease_expires_at`, renewed by the
  worker's heartbeat, `workers.lease`) and died (SIGKILL, OOM, node lost) — within a lease;
* a `sent` row published into an earlier life of Redis (`jobs.broker.broker_epoch`): the
  message went with Redis' data — at the next sweep;
* a `sent` row neither claimed nor done after `RESEND_AFTER` (anything else).

Actors are idempotent and a worker skips a message whose row is done or held by a live lease,
so a message sent twice costs at most a second run.

`install_outbox_relay(factory, broker, background=..., policy=...)` (called by
`runtime.bootstrap`) hooks the after-commit relay onto one session factory; nothing is
installed by importing this module.
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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import dramatiq
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import and_, event, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from infra import context
from infra import database as db
from infra.settings import Settings
from jobs import state
from jobs.broker import broker_epoch
from jobs.catalog import kind_of
from jobs.models import OutboxMessage
from jobs.outbox import ONCE_KEY, PENDING_KEY, STARTED_KEY

log = logging.getLogger("certs.outbox")

SWEEP_MIN_AGE = timedelta(seconds=5)
RESEND_AFTER = timedelta(minutes=15)
SWEEP_BATCH = 500
# Errors meaning the broker cannot be reached right now (refused, reset, timed out).
BROKER_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
# Statuses a row leaves only by being sent (again); `done` and `dead` are final.
SENDABLE = ("pending", "sent", "failed")


@dataclass(frozen=True)
class RetryPolicy:
    """When a failed row is sent again, when it is given up, how long a worker's lease lasts."""

    base: timedelta = timedelta(minutes=1)
    cap: timedelta = timedelta(hours=1)
    window: timedelta = timedelta(hours=24)
    lease: timedelta = timedelta(seconds=30)

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            base=timedelta(seconds=settings.job_retry_base_seconds),
            cap=timedelta(seconds=settings.job_retry_max_seconds),
            window=timedelta(hours=settings.job_retry_window_hours),
            lease=timedelta(seconds=settings.job_lease_seconds),
        )

    def delay(self, failures: int) -> timedelta:
        """Before the sweep sends a row again after its `failures`-th failure: base × 2^(n-1)."""
        exponent = min(max(failures, 1) - 1, 30)  # 2^30 minutes is past any cap
        delay: timedelta = min(self.base * (2**exponent), self.cap)
        return delay


_policy = RetryPolicy()


def policy() -> RetryPolicy:
    """This process's policy (set by `install_outbox_relay`, from settings)."""
    return _policy


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
    factory: sessionmaker[Session],
    broker: dramatiq.Broker,
    *,
    background: bool = False,
    retry_policy: RetryPolicy | None = None,
) -> Publisher | None:
    """After each commit of this factory's sessions, publish the jobs that commit requested:
    from a background `Publisher` (returned) when `background`, else inline. `retry_policy`
    becomes the process's (the sweep's and the workers' bookkeeping)."""
    global _policy
    _policy = retry_policy or RetryPolicy()
    publisher = Publisher(broker) if background else None

    def _relay_after_commit(session: Session) -> None:
        session.info.pop(ONCE_KEY, None)
        session.info.pop(STARTED_KEY, None)
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
        session.info.pop(STARTED_KEY, None)
        session.info.pop(PENDING_KEY, None)

    event.listen(factory, "after_commit", _relay_after_commit)
    event.listen(factory, "after_rollback", _forget_after_rollback)
    return publisher


def relay(ids: Iterable[uuid.UUID], *, broker: dramatiq.Broker | None = None) -> int:
    """Send these pending rows now (called after the commit that wrote them)."""
    ids = list(ids)
    stmt = select(OutboxMessage).where(OutboxMessage.id.in_(ids), OutboxMessage.status == "pending")
    return _send_locked(stmt, broker or dramatiq.get_broker())


def sweep(now: datetime | None = None, *, broker: dramatiq.Broker | None = None) -> int:
    """Send what the immediate relay missed, what a dead worker or a lost Redis dropped, and
    failed rows whose retry time came; give up (`dead`) on rows failing for too long."""
    now = now or db.utcnow()
    broker = broker or dramatiq.get_broker()
    give_up(now)
    try:
        epoch = broker_epoch(broker)
    except Exception as exc:  # broker unreachable: the sends below will say so on the rows
        log.warning("outbox sweep cannot read the broker's epoch: %r", exc)
        epoch = None
    row = OutboxMessage
    unclaimed = row.lease_expires_at.is_(None)
    due = [
        (row.status == "pending") & (row.created_at <= now - SWEEP_MIN_AGE),
        # claimed by a worker that stopped renewing its lease: it died
        (row.status == "sent") & (row.lease_expires_at < now),
        # neither claimed nor done for long: lost somewhere we cannot see
        (row.status == "sent") & unclaimed & (row.sent_at <= now - RESEND_AFTER),
        # Dramatiq gave up: again after the backoff, within the window
        and_(
            row.status == "failed",
            row.retry_at <= now,
            row.first_failed_at > now - _policy.window,
        ),
    ]
    if epoch is not None:
        # published into a Redis that has since lost its data
        due.append(
            (row.status == "sent")
            & unclaimed
            & (row.broker_epoch != epoch)
            & (row.sent_at <= now - SWEEP_MIN_AGE)
        )
    stmt = select(row).where(or_(*due)).order_by(row.created_at).limit(SWEEP_BATCH)
    return _send_locked(stmt, broker, epoch=epoch)


def give_up(now: datetime | None = None) -> int:
    """`failed` rows whose first failure is older than the window become `dead`, and their Job
    `failed` with the last error (visible in `GET /jobs/{id}` and `certs_outbox_rows`)."""
    now = now or db.utcnow()
    with context.platform(), db.new_session() as session:
        rows = session.execute(
            select(
                OutboxMessage.id,
                OutboxMessage.org_id,
                OutboxMessage.job_id,
                OutboxMessage.failures,
                OutboxMessage.last_error,
            )
            .where(
                OutboxMessage.status == "failed",
                OutboxMessage.first_failed_at <= now - _policy.window,
            )
            .limit(SWEEP_BATCH)
            .with_for_update(skip_locked=True)
        ).all()
        if not rows:
            return 0
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_([r.id for r in rows]), OutboxMessage.status == "failed")
            .values(status="dead", retry_at=None)
        )
        session.commit()
    for r in rows:
        log.error(
            "job %s (outbox %s) is dead after %d failures: %s",
            r.job_id, r.id, r.failures, r.last_error,
        )  # fmt: skip
        if r.job_id is not None and r.org_id is not None:
            error = f"gave up after {r.failures} failed runs: {r.last_error or 'unknown error'}"
            with context.tenant(r.org_id), db.new_session() as session:
                state.give_up_job(session, r.job_id, error)
                session.commit()
    return len(rows)


def requeue(
    ids: Iterable[uuid.UUID] | None = None, *, statuses: tuple[str, ...] = ("dead",)
) -> int:
    """Send rows again at the next sweep, with a fresh retry window: the given ids, or every row
    in `statuses` (default: the dead ones). Their jobs go back to `queued`."""
    with context.platform(), db.new_session() as session:
        stmt = select(OutboxMessage.id, OutboxMessage.org_id, OutboxMessage.job_id).where(
            OutboxMessage.status.in_(statuses)
        )
        if ids is not None:
            stmt = stmt.where(OutboxMessage.id.in_(list(ids)))
        rows = session.execute(stmt.with_for_update(skip_locked=True)).all()
        if not rows:
            return 0
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_([r.id for r in rows]))
            .values(
                status="pending",
                created_at=db.utcnow() - SWEEP_MIN_AGE,
                failures=0,
                first_failed_at=None,
                retry_at=None,
                lease_expires_at=None,
            )
        )
        session.commit()
    for r in rows:
        if r.job_id is not None and r.org_id is not None:
            with context.tenant(r.org_id), db.new_session() as session:
                state.requeue_job(session, r.job_id)
                session.commit()
    return len(rows)


def stuck(statuses: tuple[str, ...] = ("dead",), limit: int = 100) -> list[dict[str, Any]]:
    """The rows in `statuses` (oldest first failure first), for operators: `certs jobs list`."""
    row = OutboxMessage
    with context.platform(), db.new_session() as session:
        rows = session.execute(
            select(
                row.id,
                row.org_id,
                row.actor_name,
                row.job_id,
                row.status,
                row.failures,
                row.first_failed_at,
                row.retry_at,
                row.last_error,
            )
            .where(row.status.in_(statuses))
            .order_by(row.first_failed_at, row.created_at)
            .limit(limit)
        ).all()
    return [dict(r._mapping) for r in rows]


def counts() -> dict[str, int]:
    """Rows by status, `done` left out (it only grows): pending, sent, failed, dead."""
    with context.platform(), db.new_session() as session:
        found = dict(
            session.execute(
                select(OutboxMessage.status, func.count())
                .where(OutboxMessage.status != "done")
                .group_by(OutboxMessage.status)
            ).all()
        )
    return {status: found.get(status, 0) for status in ("pending", "sent", "failed", "dead")}


def backlog() -> dict[str, Any]:
    """Pending count and the age of the oldest pending row (for /readyz and /metrics)."""
    with context.platform(), db.new_session() as session:
        count, oldest = session.execute(
            select(func.count(), func.min(OutboxMessage.created_at)).where(
                OutboxMessage.status.in_(("pending", "sent"))
            )
        ).one()
    return {"count": count, "oldest": oldest}


_NO_EPOCH = object()


def _send_locked(stmt: Any, broker: dramatiq.Broker, *, epoch: Any = _NO_EPOCH) -> int:
    # Each row as it was read: the update after publishing applies only to rows a fast worker
    # has not moved on meanwhile (SQLite has no row locks to hold it off): done, failed again.
    sent: dict[tuple[str, int], list[uuid.UUID]] = {}
    with context.platform(), db.new_session() as session:
        rows = session.scalars(stmt.with_for_update(skip_locked=True)).all()
        read = {row.id: (row.status, row.failures or 0) for row in rows}
        unreachable: Exception | None = None
        for row in rows:
            try:
                if unreachable is not None:
                    raise unreachable
                if epoch is _NO_EPOCH:  # read once, before the first publish
                    epoch = broker_epoch(broker)
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
                    .execution_options(synchronize_session=False)
                )
                continue
            sent.setdefault(read[row.id], []).append(row.id)
        for (status, failures), ids in sent.items():
            session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id.in_(ids),
                    OutboxMessage.status == status,
                    OutboxMessage.failures == failures,
                )
                .values(
                    status="sent",
                    sent_at=db.utcnow(),
                    attempts=OutboxMessage.attempts + 1,
                    broker_epoch=epoch if isinstance(epoch, str) else None,
                    lease_expires_at=None,
                    claimed_by=None,
                    retry_at=None,
                )
                .execution_options(synchronize_session=False)
            )
        session.commit()
    return sum(len(ids) for ids in sent.values())


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
