"""The periodic work: what the scheduler runs on a timer and `certs tick` runs once, now.

Steps register themselves with `register_step(name, fn, order)` from their own modules (imported
through `workers.actors`): the outbox sweep, status recomputation, rule evaluation, delivery.
Each step is `fn(now, org_id) -> dict` (org_id None = every organization).

Two callers: `certs tick` (`run_once()`: do everything now and wait for it) and the scheduler
(`run_once(scheduled=True)`: only what is due, heavy per-org work queued for the workers). A step
that cares asks `scheduled()`; the recompute step does.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from infra import database as db
from jobs import relay as outbox

log = logging.getLogger("certs.periodic")

Step = Callable[[datetime, uuid.UUID | None], dict[str, Any]]


@dataclass(frozen=True)
class _Registered:
    order: int
    name: str
    fn: Step


_STEPS: dict[str, _Registered] = {}
_SCHEDULED: ContextVar[bool] = ContextVar("periodic_scheduled", default=False)


def scheduled() -> bool:
    """True inside a scheduler run (do what is due, queue work); false for `certs tick`."""
    return _SCHEDULED.get()


def register_step(name: str, fn: Step, order: int) -> None:
    """Add (or replace) a periodic step; lower `order` runs first."""
    _STEPS[name] = _Registered(order, name, fn)


def steps() -> list[tuple[str, Step]]:
    return [(s.name, s.fn) for s in sorted(_STEPS.values(), key=lambda s: (s.order, s.name))]


def run_once(
    now: datetime | None = None, org_id: uuid.UUID | None = None, *, scheduled: bool = False
) -> dict[str, Any]:
    """Run every periodic step once; a failing step is logged and does not stop the others."""
    now = now or db.utcnow()
    report: dict[str, Any] = {}
    token = _SCHEDULED.set(scheduled)
    try:
        for name, step in steps():
            try:
                report[name] = step(now, org_id)
            except Exception as exc:  # one broken step must not starve the rest
                log.exception("periodic step %s failed", name)
                report[name] = {"error": repr(exc)}
    finally:
        _SCHEDULED.reset(token)
    return report


register_step("outbox_sweep", lambda now, _org: {"sent": outbox.sweep(now)}, order=0)


def wait_for_queued(since: datetime, timeout: float = 300.0) -> dict[str, int]:
    """Wait until the work queued (through the outbox) since `since` is done or failed.

    On the in-process broker (no REDIS_URL) nobody else would run it, so a worker thread is
    started here for the wait; on Redis the deployment's workers do the work.
    """
    import time

    import dramatiq
    from dramatiq.brokers.stub import StubBroker
    from sqlalchemy import func, select

    from infra import context
    from jobs.models import OutboxMessage

    broker = dramatiq.get_broker()
    worker = None
    if isinstance(broker, StubBroker):
        worker = dramatiq.Worker(broker, worker_threads=2)
        worker.start()
    deadline = time.monotonic() + timeout
    try:
        while True:
            with context.platform(), db.new_session() as session:
                pending = session.scalars(
                    select(OutboxMessage.id).where(
                        OutboxMessage.created_at >= since, OutboxMessage.status == "pending"
                    )
                ).all()
                counts = dict(
                    session.execute(
                        select(OutboxMessage.status, func.count())
                        .where(OutboxMessage.created_at >= since)
                        .group_by(OutboxMessage.status)
                    ).all()
                )
            if pending:
                outbox.relay(pending)
            waiting = counts.get("pending", 0) + counts.get("sent", 0)
            if not waiting or time.monotonic() > deadline:
                return {
                    "done": counts.get("done", 0),
                    "failed": counts.get("failed", 0),
                    "waiting": waiting,
                }
            time.sleep(0.1)
    finally:
        if worker is not None:
            worker.stop()
