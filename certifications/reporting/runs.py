"""Runs of scheduled reports: found by the org's tick, each emailed once.

The tick reads the org's due schedules in one statement, inserts one run per schedule for the
latest occurrence due (unique per schedule and occurrence: a second tick, or two concurrent
ones, insert nothing) and queues its delivery in the same transaction (the outbox); it then
moves `next_run_at` past now, so a worker that was down for several periods makes one run,
not a burst. Delivery is the notifications' claim-send-record path (`workers.delivery`): the
claim builds the file, the send attaches it, the record marks the run and its schedule.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from certifications.automation.delivery import (
    RetryPolicy,
    claim_row,
    record_failure,
    record_sent,
)
from certifications.reporting import cron
from certifications.reporting.models import ReportRun, ReportSchedule
from certifications.reporting.report_files import ReportFile, report_file
from infra.context import require_org_id
from infra.dialect import upsert_insert
from infra.errors import NotFound
from jobs.outbox import request_job
from tenancy.models import Organization
from tenancy.organizations import org_today

DELIVER_REPORT = "deliver_report"


def _due(now: datetime) -> Any:
    s = ReportSchedule
    return and_(s.enabled.is_(True), s.next_run_at.is_not(None), s.next_run_at <= now)


def due_since(session: Session, now: datetime) -> dict[uuid.UUID, datetime]:
    """Each org with a schedule due, and since when (platform context: the scheduler's read,
    over the partial index of enabled schedules)."""
    s = ReportSchedule
    rows = session.execute(
        select(s.org_id, func.min(s.next_run_at))
        .where(_due(now))
        .group_by(s.org_id)
        .execution_options(all_tenants=True)
    ).all()
    return {org_id: since for org_id, since in rows if since is not None}


def collect_report_runs(session: Session, org: Organization, now: datetime) -> int:
    """Record and queue each due run of the org's schedules; returns how many (flushes)."""
    due = session.scalars(select(ReportSchedule).where(_due(now))).all()
    if not due:
        return 0
    on = org_today(org.timezone, now)
    rows = [
        {
            "org_id": require_org_id(),
            "id": uuid.uuid4(),
            "schedule_id": s.id,
            "scheduled_for": cron.latest_due(s.cron, org.timezone, s.next_run_at, now),
            "as_of": on,
            "status": "pending",
            "created_at": now,
            "updated_at": now,
        }
        for s in due
        if s.next_run_at is not None
    ]
    table = ReportRun.__table__
    inserted = session.execute(
        upsert_insert(session.get_bind().dialect.name, ReportRun)
        .values(rows)
        .on_conflict_do_nothing(
            index_elements=[table.c.org_id, table.c.schedule_id, table.c.scheduled_for]
        )
        .returning(table.c.id, table.c.schedule_id)
    ).all()
    made = {schedule_id for _, schedule_id in inserted}
    for run_id, _ in sorted(inserted, key=lambda r: str(r[1])):
        request_job(session, DELIVER_REPORT, run_id=run_id)
    for s in due:
        values: dict[str, Any] = {"next_run_at": cron.next_run(s.cron, org.timezone, now)}
        if s.id in made:
            values.update(last_run_at=now, last_run_status="pending")
        session.execute(
            update(ReportSchedule)
            .where(ReportSchedule.id == s.id, ReportSchedule.next_run_at == s.next_run_at)
            .values(**values),
            execution_options={"synchronize_session": False},
        )
    return len(made)


# --- delivery --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportOut:
    """Everything the email needs, built at claim time (the file included)."""

    run_id: uuid.UUID
    schedule_id: uuid.UUID
    org_name: str
    kind: str
    recipients: list[str]
    on: date
    attempts: int
    file: ReportFile


def claim_report_run(session: Session, run_id: uuid.UUID, now: datetime) -> ReportOut | None:
    """Take the run for sending (one winner) and build its file; None if nothing to send."""
    if not claim_row(session, ReportRun, run_id, now):
        return None
    run, schedule, org = session.execute(
        select(ReportRun, ReportSchedule, Organization)
        .join(
            ReportSchedule,
            and_(
                ReportSchedule.org_id == ReportRun.org_id,
                ReportSchedule.id == ReportRun.schedule_id,
            ),
        )
        .join(Organization, Organization.id == ReportRun.org_id)
        .where(ReportRun.id == run_id)
        .execution_options(populate_existing=True)
    ).one()
    try:
        file = report_file(
            session,
            org_name=org.name,
            timezone=org.timezone,
            kind=schedule.kind,
            fmt=schedule.format,
            scope_kind=schedule.scope_kind,
            scope_id=schedule.scope_id,
            on=run.as_of,
            now=now,
        )
    except NotFound as exc:  # the scope was deleted since: nothing to report, for good
        run.status, run.last_error, run.claimed_at = "failed", exc.message, None
        _mark_schedule(session, schedule.id, "failed")
        session.flush()
        return None
    return ReportOut(
        run.id,
        schedule.id,
        org.name,
        schedule.kind,
        list(schedule.recipients),
        run.as_of,
        run.attempts,
        file,
    )


def _mark_schedule(session: Session, schedule_id: uuid.UUID, status: str) -> None:
    session.execute(
        update(ReportSchedule)
        .where(ReportSchedule.id == schedule_id)
        .values(last_run_status=status),
        execution_options={"synchronize_session": False},
    )


def mark_report_sent(session: Session, out: ReportOut, via: str, now: datetime) -> None:
    record_sent(session, ReportRun, out.run_id, now, claimed_at=None)
    _mark_schedule(session, out.schedule_id, "sent")


def mark_report_failure(
    session: Session, out: ReportOut, error: str, now: datetime, policy: RetryPolicy
) -> int | None:
    """Back to `pending` (returns the retry delay), or `failed` for good."""
    delay = record_failure(session, ReportRun, out.run_id, out.attempts, error, now, policy)
    if delay is None:
        _mark_schedule(session, out.schedule_id, "failed")
    return delay
