"""Report schedules: create, change, delete; each write checks the whole schedule (kind, format,
scope, cron) and recomputes `next_run_at` in the org's time zone. Services only flush."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from certifications.catalog.models import CertificationGroup
from certifications.directory.models import Client, Location
from certifications.reporting import cron
from certifications.reporting.models import REPORT_FORMATS, ReportSchedule
from infra.database import get_or_not_found
from infra.errors import Invalid

SCOPE_FIELDS = {"location_id": "location", "client_id": "client", "group_id": "group"}
_SCOPE_MODELS: dict[str, Any] = {
    "location": Location,
    "client": Client,
    "group": CertificationGroup,
}
_SCOPE_NAMES = {"location": "location", "client": "client", "group": "certification group"}


def _scope(session: Session, kind: str, scope: dict[str, Any] | None) -> tuple[str | None, Any]:
    """(scope kind, id) from `{"location_id": ...}` (one key; none for an org-wide summary).
    An id not of this org is refused like one that exists nowhere (422 naming it)."""
    given = {k: v for k, v in (scope or {}).items() if v is not None}
    if len(given) > 1 or (kind == "audit-pack" and not given):
        what = "exactly one" if kind == "audit-pack" else "at most one"
        message = f"Give {what} of location_id, client_id, group_id."
        raise Invalid({"json": {"scope": [message]}})
    if not given:
        return None, None
    ((field, scope_id),) = given.items()
    scope_kind = SCOPE_FIELDS[field]
    if session.get(_SCOPE_MODELS[scope_kind], scope_id) is None:
        message = f"No such {_SCOPE_NAMES[scope_kind]} in this organization."
        raise Invalid({"json": {"scope": {field: [message]}}})
    return scope_kind, scope_id


def _format(kind: str, fmt: str | None) -> str:
    allowed = REPORT_FORMATS[kind]
    if fmt is None:
        return allowed[0]
    if fmt not in allowed:
        raise Invalid({"json": {"format": [f"A {kind} is sent as {' or '.join(allowed)}."]}})
    return fmt


def _cron(expression: str) -> str:
    try:
        return cron.normalize(expression)
    except cron.CronInvalid as exc:
        raise Invalid({"json": {"cron": [str(exc)]}}) from exc


def _next(schedule: ReportSchedule, timezone: str, now: datetime) -> datetime | None:
    return cron.next_run(schedule.cron, timezone, now) if schedule.enabled else None


def create_schedule(
    session: Session, data: dict[str, Any], timezone: str, now: datetime, actor: str | None
) -> ReportSchedule:
    kind = data["kind"]
    fmt = _format(kind, data.get("format"))
    expression = _cron(data["cron"])
    scope_kind, scope_id = _scope(session, kind, data.get("scope"))
    schedule = ReportSchedule(
        kind=kind,
        format=fmt,
        scope_kind=scope_kind,
        scope_id=scope_id,
        cron=expression,
        recipients=data["recipients"],
        enabled=data.get("enabled", True),
        created_by=actor,
    )
    schedule.next_run_at = _next(schedule, timezone, now)
    session.add(schedule)
    session.flush()
    return schedule


def get_schedule(session: Session, schedule_id: uuid.UUID) -> ReportSchedule:
    return get_or_not_found(session, ReportSchedule, schedule_id, "report schedule")


def scope_of(schedule: ReportSchedule) -> dict[str, Any]:
    """`{"location_id": ..., "client_id": None, "group_id": None}` (all None: org-wide)."""
    return {
        field: schedule.scope_id if kind == schedule.scope_kind else None
        for field, kind in SCOPE_FIELDS.items()
    }


def update_schedule(
    session: Session,
    schedule_id: uuid.UUID,
    changes: dict[str, Any],
    timezone: str,
    now: datetime,
) -> ReportSchedule:
    """Apply `changes` and check the schedule they make as a whole (a kind whose format or
    scope no longer fits is refused, nothing written)."""
    schedule = get_schedule(session, schedule_id)
    kind = changes.get("kind", schedule.kind)
    if "format" in changes:
        fmt = changes["format"]
    else:  # kept while the kind allows it, else the kind's default
        fmt = schedule.format if schedule.format in REPORT_FORMATS[kind] else None
    schedule.format = _format(kind, fmt)
    scope = changes["scope"] if "scope" in changes else scope_of(schedule)
    schedule.scope_kind, schedule.scope_id = _scope(session, kind, scope)
    schedule.kind = kind
    if "cron" in changes:
        schedule.cron = _cron(changes["cron"])
    if "recipients" in changes:
        schedule.recipients = changes["recipients"]
    if "enabled" in changes:
        schedule.enabled = changes["enabled"]
    schedule.next_run_at = _next(schedule, timezone, now)
    schedule.updated_at = now
    session.flush()
    return schedule


def delete_schedule(session: Session, schedule_id: uuid.UUID) -> None:
    """The schedule and its runs (a run being sent right now still finishes its email)."""
    session.delete(get_schedule(session, schedule_id))
    session.flush()


def reschedule_all(session: Session, timezone: str, now: datetime) -> int:
    """After the org's time zone changed: every enabled schedule's next run in the new zone."""
    changed = 0
    for schedule in session.scalars(select(ReportSchedule).where(ReportSchedule.enabled)):
        session.execute(
            update(ReportSchedule)
            .where(ReportSchedule.id == schedule.id)
            .values(next_run_at=cron.next_run(schedule.cron, timezone, now), updated_at=now),
            execution_options={"synchronize_session": False},
        )
        changed += 1
    return changed
