"""One periodic pipeline per organization, top to bottom.

1. The scheduler (leader only) claims each due organization (`assignments.schedule.due_orgs`:
   its local date changed, its last tick is over an hour old, or a report schedule fell due
   since its last tick) and queues one `tick_org` for it through the outbox, in the claim's
   transaction.
2. `tick_org` (a worker) runs `tick_org()` below in one unit of work: recompute the org's
   statuses for its today, then evaluate task and notification rules on those fresh statuses,
   then queue the deliveries (digests and scheduled reports' runs included,
   `certifications.reporting.runs`) — in that order, in the same worker — and last sweep the org's
   document store of bytes no live document row names (`certifications.evidence.sweep`).
   Expired idempotency keys of the org go too (`tenancy.idempotency`).
3. Writes that change a status or its rules request the same tick (`request_tick`).

`certs tick` runs the same `tick_org()` for every org right here (`tick_now`), then waits for
the deliveries it queued and reports how they ended (`delivery_outcomes`): a delivery that
failed for good is a failure of the run even though its job ended normally.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import date, datetime
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import func, select

from certifications.assignments import schedule
from certifications.assignments.fanout import fanout_subjects, membership_boundaries
from certifications.assignments.recompute import recompute_org
from certifications.automation.digests import collect_digests
from certifications.automation.models import Notification
from certifications.automation.pipeline import enqueue_deliveries, evaluate_org
from certifications.evidence.storage import document_store
from certifications.evidence.sweep import sweep_documents
from certifications.history.snapshots import backfill as snapshots_backfill
from certifications.history.snapshots import snapshot_org
from certifications.reporting.runs import collect_report_runs, due_since
from certifications.webhooks import sending as webhook_sending
from certifications.webhooks.endpoints import request_delivery
from infra import context
from infra import database as db
from jobs import relay
from jobs.models import OutboxMessage
from jobs.outbox import request_job
from runtime.bootstrap import current as current_runtime
from tenancy.idempotency import purge_expired
from tenancy.models import Organization
from tenancy.organizations import org_today
from workers.unit_of_work import JobRun, job_run, platform_run

log = logging.getLogger("certs.tick")


def tick_org(run: JobRun, org_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    """Statuses, then rules, then deliveries, for one org (long recomputes commit per chunk)."""
    org = run.session.get(Organization, org_id)
    if org is None:
        return {}
    report: dict[str, Any] = {}
    # Memberships that started or ended since the last ticks start or end their requirements
    # first, so the recompute below already sees the rows they create.
    members = membership_boundaries(run.session, org_today(org.timezone, now))
    if members:
        today = org_today(org.timezone, now)
        report["memberships"] = fanout_subjects(run.session, org_id, members, today=today, now=now)
    report.update(recompute_org(run.session, org_id, now, on_chunk=run.checkpoint))
    if webhook_sending.wants_round(run.session, now):  # events the recompute or writes made
        request_delivery(run.session)
    report["idempotency_keys_purged"] = purge_expired(run.session, now)
    if org.has_module("hse"):
        report["snapshots"] = snapshot_org(run.session, org_id, now)  # today's trend point
        report.update(evaluate_org(run.session, org_id, now, org.timezone))
        report["digests"] = collect_digests(run.session, org, now)
        report["reports"] = collect_report_runs(run.session, org, now)
        report["queued"] = enqueue_deliveries(run.session, now)
        report["documents_swept"] = _sweep(run, org_id, now)
    return report


def _sweep(run: JobRun, org_id: uuid.UUID, now: datetime) -> int | None:
    """Orphaned document bytes go; a store that fails is logged, not the tick's failure."""
    try:
        store = document_store(current_runtime().settings)
        return sweep_documents(run.session, store, org_id, now)
    except Exception:
        log.exception("document sweep of org %s failed; the next tick tries again", org_id)
        return None


def queue_due_ticks(now: datetime | None = None, org_id: uuid.UUID | None = None) -> dict[str, int]:
    """The scheduler's step: claim each due org (or just `org_id`) and queue its tick."""
    now = now or db.utcnow()
    with platform_run() as session:
        due = schedule.due_orgs(session, now, org_id, waiting=due_since(session, now))
    queued = 0
    for oid, today, version in due:
        with job_run(oid) as run:
            if schedule.claim(run.session, oid, today, now, version):
                request_job(run.session, schedule.TICK_JOB)
                queued += 1
    return {"due": len(due), "queued": queued}


def tick_now(now: datetime | None = None, org_id: uuid.UUID | None = None) -> dict[str, Any]:
    """`certs tick`: every org's (or one org's) tick, right here, one unit of work per org."""
    now = now or db.utcnow()
    with platform_run() as session:
        orgs = [row.id for row in schedule.organizations(session, org_id)]
    report: dict[str, Any] = {}
    for oid in orgs:
        with job_run(oid) as run:
            report[str(oid)] = tick_org(run, oid, now)
    return {"orgs": len(orgs), "ticks": report}


def backfill_snapshots(since: date, org_id: uuid.UUID | None = None) -> dict[str, int]:
    """`certs snapshots backfill`: every org's (or one org's) daily snapshots from `since`
    through today, from history; one commit per org (re-runs overwrite the same figures)."""
    now = db.utcnow()
    with platform_run() as session:
        orgs = [row.id for row in schedule.organizations(session, org_id)]
    report: dict[str, int] = {}
    for oid in orgs:
        with job_run(oid) as run:
            report[str(oid)] = snapshots_backfill(run.session, oid, since, now)
    return report


def delivery_outcomes(org_ids: list[uuid.UUID], since: datetime) -> dict[str, int]:
    """How the notifications queued since `since` stand, by status, over these orgs."""
    counts = {status: 0 for status in ("sent", "failed", "cancelled", "pending", "sending")}
    for oid in org_ids:
        with context.tenant(oid), db.new_session() as session:
            rows = session.execute(
                select(Notification.status, func.count())
                .where(Notification.enqueued_at >= since)
                .group_by(Notification.status)
            ).all()
        for status, count in rows:
            counts[status] = counts.get(status, 0) + count
    return counts


def wait_for_queued(
    since: datetime, timeout: float = 300.0, org_ids: list[uuid.UUID] | None = None
) -> dict[str, Any]:
    """Wait until the work queued (through the outbox) since `since` is done or failed.

    `failed` counts the jobs that failed and, for `org_ids`, the notifications queued since
    `since` whose delivery failed for good (their job ends normally after recording the
    failure); `deliveries` breaks those notifications down by status.
    On the in-process broker nobody else would run it, so a worker thread is started here for
    the wait; on Redis the deployment's workers do the work.
    """
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
                relay.relay(pending)
            waiting = counts.get("pending", 0) + counts.get("sent", 0)
            if not waiting or time.monotonic() > deadline:
                deliveries = delivery_outcomes(org_ids or [], since)
                return {
                    "done": counts.get("done", 0),
                    "failed": counts.get("failed", 0) + deliveries["failed"],
                    "waiting": waiting,
                    "deliveries": deliveries,
                }
            time.sleep(0.1)
    finally:
        if worker is not None:
            worker.stop()
