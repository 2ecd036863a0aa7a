"""Daily compliance snapshots: one row per (org, certification, day) with counts per status.

The org's first tick of each local day writes yesterday's (final) and today's
(`snapshot_org`); `certs snapshots backfill --since` writes past days from history. Each day is
one INSERT … SELECT … ON CONFLICT DO UPDATE over `history.asof.as_of_rows`: idempotent, a
re-run overwrites the day with the same figures. The trend reads a range of days in one
indexed statement (`trend`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, Integer, Uuid, and_, case, func, literal, select
from sqlalchemy.orm import Session

from certifications.catalog.models import Certification
from certifications.history.asof import AsOf, as_of_rows, status_counts_as_of
from certifications.history.models import ComplianceSnapshot
from certifications.vocabulary import COMPLIANT_STATUSES, STATUSES
from infra.dialect import new_uuid_sql, upsert_insert
from tenancy.models import Organization
from tenancy.organizations import org_today

S = ComplianceSnapshot
C = Certification
COUNTS = (*STATUSES, "exempt", "required", "compliant")


def snapshot_day(session: Session, org_id: uuid.UUID, when: AsOf) -> int:
    """Write (or overwrite) the day's row of every active certification; returns the rows."""
    rows = as_of_rows(when)
    inside = rows.c.exempt.is_(False)

    def total(cond: Any) -> Any:
        return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)

    figures = {status: total(and_(inside, rows.c.status == status)) for status in STATUSES}
    figures["exempt"] = total(rows.c.exempt.is_(True))
    figures["required"] = total(and_(inside, rows.c.required.is_(True)))
    figures["compliant"] = total(
        and_(inside, rows.c.required.is_(True), rows.c.status.in_(COMPLIANT_STATUSES))
    )
    dialect = session.get_bind().dialect.name
    source = (
        select(
            new_uuid_sql(dialect),
            literal(org_id, Uuid()),
            C.id,
            literal(when.on, Date()),
            *(figures[name].cast(Integer()) for name in COUNTS),
        )
        .select_from(C)
        .outerjoin(rows, rows.c.certification_id == C.id)
        .where(C.archived_at.is_(None))
        .group_by(C.id)
    )
    insert = upsert_insert(dialect, S)
    stmt = insert.from_select(
        ["id", "org_id", "certification_id", "day", *COUNTS], source, include_defaults=False
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[S.org_id, S.certification_id, S.day],
        set_={name: getattr(stmt.excluded, name) for name in COUNTS},
    )
    result = session.execute(stmt.execution_options(preserve_rowcount=True))
    return max(result.rowcount or 0, 0)  # type: ignore[attr-defined]


def snapshot_org(session: Session, org_id: uuid.UUID, now: datetime) -> int:
    """The tick's step, once per local day (the day's first tick, after the recomputation):
    yesterday's snapshot rewritten as it stood at its end, and today's as it starts. Later
    ticks of the day write nothing: at a million assignments a snapshot is a statement of
    seconds, and today's live figures are the summary's."""
    org = session.get(Organization, org_id)
    if org is None:
        return 0
    today = org_today(org.timezone, now)
    if session.scalar(select(S.id).where(S.day == today).limit(1)) is not None:
        return 0
    written = snapshot_day(session, org_id, AsOf.of(org.timezone, today - timedelta(days=1)))
    return written + snapshot_day(session, org_id, AsOf.of(org.timezone, today))


def backfill(session: Session, org_id: uuid.UUID, since: date, now: datetime) -> int:
    """Every day from `since` through today (org time zone), from history; returns the days.
    Flushes only: the caller commits (per day, for a long range)."""
    org = session.get(Organization, org_id)
    if org is None:
        return 0
    today = org_today(org.timezone, now)
    day, days = since, 0
    while day <= today:
        snapshot_day(session, org_id, AsOf.of(org.timezone, day))
        day += timedelta(days=1)
        days += 1
    return days


def _point(day: date, counts: dict[str, int]) -> dict[str, Any]:
    required, compliant = counts["required"], counts["compliant"]
    return {
        "day": day,
        "counts": {status: counts[status] for status in STATUSES},
        "exempt": counts["exempt"],
        "required": required,
        "compliant": compliant,
        "compliance": round(compliant / required, 4) if required else None,
    }


def trend_from_history(
    session: Session,
    timezone: str,
    start: date,
    end: date,
    subject_ids: Sequence[uuid.UUID],
    certification_ids: Sequence[uuid.UUID] | None = None,
) -> list[dict[str, Any]]:
    """The daily series of a few subjects (a site), computed from history day by day (one
    statement per day, each an index probe per subject): snapshots are per certification."""
    wanted = None if certification_ids is None else set(certification_ids)
    series = []
    day = start
    while day <= end:
        counts = dict.fromkeys(COUNTS, 0)
        when = AsOf.of(timezone, day)
        for cid, status, required, exempt, n in status_counts_as_of(
            session, when, subject_ids=subject_ids
        ):
            if wanted is not None and cid not in wanted:
                continue
            if exempt:
                counts["exempt"] += n
                continue
            counts[status] += n
            if required:
                counts["required"] += n
                counts["compliant"] += n if status in COMPLIANT_STATUSES else 0
        series.append(_point(day, counts))
        day += timedelta(days=1)
    return series


def trend(
    session: Session, start: date, end: date, certification_ids: Sequence[uuid.UUID] | None
) -> list[dict[str, Any]]:
    """The daily series from `start` to `end` (days with a snapshot), summed over the
    certifications given (all when None): one range read on (org, day)."""
    sums = [func.sum(getattr(S, name)).label(name) for name in COUNTS]
    stmt = select(S.day, *sums).where(S.day >= start, S.day <= end).group_by(S.day)
    if certification_ids is not None:
        stmt = stmt.where(S.certification_id.in_(list(certification_ids)))
    return [
        _point(r.day, {name: int(getattr(r, name) or 0) for name in COUNTS})
        for r in session.execute(stmt.order_by(S.day))
    ]
