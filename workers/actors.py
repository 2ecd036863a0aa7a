"""Every actor, listed explicitly and declared on a broker by `register_actors(broker)`.

Each actor is the unit of work of one job (`workers.unit_of_work.job_run`): it turns message
ids into a domain call and owns the commit. Names, queues and limits come from `jobs.catalog`,
so a process that only publishes (the API) needs none of this module.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

import dramatiq

from certifications.assignments import fanout, recompute
from certifications.assignments.schedule import request_tick
from certifications.automation import delivery
from certifications.evidence.storage import document_store
from certifications.reporting.audit_pack import produce_audit_pack
from certifications.webhooks.endpoints import request_delivery
from infra import database as db
from infra.settings import Settings
from jobs import catalog
from tenancy.organizations import org_today_for
from workers import webhooks
from workers.delivery import deliver
from workers.delivery import deliver_digest as deliver_one_digest
from workers.delivery import deliver_report as deliver_one_report
from workers.message_log import MessageLog
from workers.middleware import TenantMiddleware
from workers.tick import tick_org as run_tick
from workers.unit_of_work import job_run

log = logging.getLogger("certs.worker")

# Set by `register_actors`: delivery reads its SMTP/webhook settings and retry policy here.
_settings: Settings | None = None


def fanout_certification(org_id: str, certification_id: str, job_id: str | None = None) -> None:
    """Create/retire role assignments of one certification after its roles changed."""
    now = db.utcnow()
    oid, cid = uuid.UUID(org_id), uuid.UUID(certification_id)
    with job_run(oid, job_id) as run:
        today = org_today_for(run.session, oid, now)
        total = fanout.count_role_members(run.session, oid, cid, today)
        run.progress(0, total)
        report = fanout.fanout_certification(run.session, oid, cid, today=today, now=now)
        report["equivalences"] = recompute.follow_fanout(
            run.session, oid, today, certification_id=cid, now=now
        )
        request_tick(run.session)
        run.finish(report, done=total)


def fanout_employees(
    org_id: str,
    employee_ids: list[str] | None = None,
    job_id: str | None = None,
    subject_ids: list[str] | None = None,
) -> None:
    """Create/retire rule-made assignments of subjects whose sources changed: employees who
    joined, left, changed roles or memberships; assets moved or recategorised; clients and
    locations created or moved (`subject_ids`, any kind).

    One transaction per batch, so a large import shows progress; each batch is idempotent.
    """
    now = db.utcnow()
    oid = uuid.UUID(org_id)
    ids = sorted({uuid.UUID(e) for e in [*(employee_ids or []), *(subject_ids or [])]})
    with job_run(oid, job_id) as run:
        today = org_today_for(run.session, oid, now)
        run.progress(0, len(ids))
        report = {
            "created": 0,
            "removed": 0,
            "not_required": 0,
            "required_again": 0,
            "equivalences": 0,
        }
        done = 0
        for start in range(0, len(ids), fanout.EMPLOYEE_CHUNK):
            chunk = ids[start : start + fanout.EMPLOYEE_CHUNK]
            part = fanout.fanout_employees(run.session, oid, chunk, today=today, now=now)
            part["equivalences"] = recompute.follow_fanout(
                run.session, oid, today, subject_ids=chunk, now=now
            )
            report = {key: report[key] + part[key] for key in report}
            done += len(chunk)
            if done < len(ids):
                run.checkpoint(done)
        request_tick(run.session)
        run.finish(report, done=len(ids))


def recompute_certification(
    org_id: str, certification_id: str, job_id: str | None = None, apply_to_current: bool = False
) -> None:
    """After a certification's validity or warning window changed: statuses (and, when asked,
    the computed expiries of current cycles first)."""
    oid = uuid.UUID(org_id)
    with job_run(oid, job_id) as run:
        run.progress(0, 1)
        report = recompute.recompute_certification(
            run.session,
            oid,
            uuid.UUID(certification_id),
            db.utcnow(),
            apply_to_current=apply_to_current,
        )
        request_tick(run.session)
        run.finish(report, done=1)


def tick_org(org_id: str, job_id: str | None = None) -> None:
    """The org's periodic pipeline: statuses for its today, then rules, then deliveries."""
    oid = uuid.UUID(org_id)
    with job_run(oid, job_id) as run:
        report = run_tick(run, oid, db.utcnow())
        run.finish(report, done=1)


def audit_pack(
    org_id: str, scope_kind: str, scope_id: str, on: str, fmt: str, job_id: str | None = None
) -> None:
    """An audit pack of a large scope: the file goes to the document store, the job's result
    says where to download it."""
    oid = uuid.UUID(org_id)
    assert job_id is not None, "requested with a job (reports.audit_pack)"
    with job_run(oid, job_id) as run:
        result = produce_audit_pack(
            run.session,
            document_store(_require_settings()),
            oid,
            uuid.UUID(job_id),
            scope_kind=scope_kind,
            scope_id=uuid.UUID(scope_id),
            on=date.fromisoformat(on),
            fmt=fmt,
            now=db.utcnow(),
        )
        run.finish(result, done=1)


def deliver_notification(org_id: str, notification_id: str, job_id: str | None = None) -> None:
    """Send one notification (email or webhook). A failed send raises `Retry`: Dramatiq retries
    it with the policy's backoff; past the attempts the row is `failed` (or, should recording
    the failure itself keep failing, `notification_failed` marks it when retries run out)."""
    outcome = deliver(uuid.UUID(org_id), uuid.UUID(notification_id), settings=_require_settings())
    if outcome.retry_in_ms is not None:
        raise dramatiq.Retry(delay=outcome.retry_in_ms)


def deliver_digest(org_id: str, digest_id: str, job_id: str | None = None) -> None:
    """Send one digest email (every reminder it carries is marked sent with it); a failed send
    raises `Retry` with the policy's backoff, like a single notification."""
    outcome = deliver_one_digest(
        uuid.UUID(org_id), uuid.UUID(digest_id), settings=_require_settings()
    )
    if outcome.retry_in_ms is not None:
        raise dramatiq.Retry(delay=outcome.retry_in_ms)


def deliver_report(org_id: str, run_id: str, job_id: str | None = None) -> None:
    """Email one scheduled report run (its file attached) to its schedule's recipients; a
    failed send raises `Retry` with the policy's backoff, like a notification."""
    outcome = deliver_one_report(uuid.UUID(org_id), uuid.UUID(run_id), settings=_require_settings())
    if outcome.retry_in_ms is not None:
        raise dramatiq.Retry(delay=outcome.retry_in_ms)


def deliver_webhooks(org_id: str, job_id: str | None = None) -> None:
    """A delivery round of the org's webhook endpoints: more work queues the next round; an
    endpoint backing off retries this message when its backoff ends."""
    oid = uuid.UUID(org_id)
    outcome = webhooks.deliver_round(oid, _require_settings())
    if outcome.more:
        with job_run(oid) as run:
            request_delivery(run.session)
    elif outcome.retry_at is not None:
        delay = (outcome.retry_at - db.utcnow()).total_seconds() * 1000
        raise dramatiq.Retry(delay=max(int(delay), 10))


def notification_failed(message_data: dict[str, Any], retry_info: dict[str, Any]) -> None:
    """Dramatiq gave up retrying a delivery (its message kept failing before recording why)."""
    kwargs = message_data.get("kwargs") or {}
    org_id, notification_id = kwargs.get("org_id"), kwargs.get("notification_id")
    if not (org_id and notification_id):
        return
    with job_run(uuid.UUID(org_id)) as run:
        delivery.mark_exhausted(
            run.session, uuid.UUID(notification_id), f"gave up after {retry_info}", db.utcnow()
        )


NOTIFICATION_FAILED = catalog.register(
    catalog.JobKind("notification_failed", queue_name="notifications", max_retries=3)
)

ACTORS: dict[catalog.JobKind, Callable[..., None]] = {
    catalog.FANOUT_CERTIFICATION: fanout_certification,
    catalog.FANOUT_EMPLOYEES: fanout_employees,
    catalog.RECOMPUTE_CERTIFICATION: recompute_certification,
    catalog.TICK_ORG: tick_org,
    catalog.DELIVER_NOTIFICATION: deliver_notification,
    catalog.DELIVER_DIGEST: deliver_digest,
    catalog.DELIVER_REPORT: deliver_report,
    catalog.DELIVER_WEBHOOKS: deliver_webhooks,
    catalog.AUDIT_PACK: audit_pack,
    NOTIFICATION_FAILED: notification_failed,
}


def register_actors(
    broker: dramatiq.Broker,
    settings: Settings,
    extra: dict[catalog.JobKind, Callable[..., None]] | None = None,
) -> None:
    """Add the worker middleware and declare every actor (and `extra` ones, for tests)."""
    global _settings
    _settings = settings
    if not any(isinstance(m, TenantMiddleware) for m in broker.middleware):
        from dramatiq.middleware import Retries

        # Before Retries: after-hooks run in reverse order, and both must see whether Retries
        # gave up (`message.failed`) to log it / mark its outbox row failed.
        broker.add_middleware(MessageLog(), before=Retries)
        broker.add_middleware(TenantMiddleware(), before=Retries)
    policy = delivery.retry_policy(settings)
    for kind, fn in {**ACTORS, **(extra or {})}.items():
        if kind.actor_name in broker.actors:
            continue
        options: dict[str, Any] = {
            "max_retries": kind.max_retries,
            "time_limit": kind.time_limit_ms,
        }
        if kind in (catalog.DELIVER_DIGEST, catalog.DELIVER_REPORT):
            options.update(max_retries=policy.max_attempts + 2, max_backoff=policy.max_ms)
        if kind is catalog.DELIVER_NOTIFICATION:
            # The row's attempts bound delivery; Dramatiq's retries carry the backoff between
            # attempts (`Retry(delay=...)`), with headroom for failures to record a failure.
            options.update(
                max_retries=policy.max_attempts + 2,
                max_backoff=policy.max_ms,
                on_retry_exhausted=NOTIFICATION_FAILED.actor_name,
            )
        if kind is catalog.DELIVER_WEBHOOKS:
            options.update(max_backoff=policy.max_ms)
        dramatiq.Actor(
            fn,
            broker=broker,
            actor_name=kind.actor_name,
            queue_name=kind.queue_name,
            priority=0,
            options=options,
        )


def _require_settings() -> Settings:
    if _settings is None:
        raise RuntimeError("actors not registered: call workers.actors.register_actors first")
    return _settings


__all__ = ["ACTORS", "register_actors"]
