"""Which organizations are due for their periodic tick, and the bookkeeping that says so.

An org is due when its local date changed since its last tick (so right after each org's local
midnight) or its last tick is over `TICK_EVERY` old. The scheduler claims a due org with a
compare-and-set on `recompute_state.version`, so two schedulers never both queue its tick.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, ForeignKey, Integer, select, text, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from infra.context import require_org_id
from infra.database import Base, UTCDateTime
from infra.dialect import upsert_insert
from jobs.models import OutboxMessage
from jobs.outbox import request_job
from tenancy.models import Organization
from tenancy.organizations import org_today

TICK_EVERY = timedelta(hours=1)


class RecomputeState(Base):
    """When each org was last recomputed, in its own local date.

    The scheduler claims an org that is due (its local date changed, or the last run is over an
    hour old) with a compare-and-set on `version`, so two schedulers never both enqueue it.
    Platform table: the scheduler reads every org's row; RLS admits one org's row or platform.
    """

    __tablename__ = "recompute_state"

    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"), primary_key=True)
    local_date: Mapped[date] = mapped_column(Date)
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    changed: Mapped[int | None] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))


RS = RecomputeState.__table__


def _upsert(dialect: str) -> Any:
    return upsert_insert(dialect, RS)


def mark_recomputed(
    session: Session, org_id: uuid.UUID, today: date, now: datetime, changed: int
) -> None:
    """Record a finished recomputation (and push back the next scheduled one)."""
    values = {"local_date": today, "claimed_at": now, "done_at": now, "changed": changed}
    stmt = _upsert(session.get_bind().dialect.name).values(org_id=org_id, version=1, **values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[RS.c.org_id], set_={**values, "version": RS.c.version + 1}
    )
    session.execute(stmt)


def organizations(session: Session, org_id: uuid.UUID | None = None) -> list[Any]:
    """Every org (or one) with its time zone, modules and tick state (platform context)."""
    stmt = (
        select(
            Organization.id,
            Organization.timezone,
            Organization.modules,
            RS.c.local_date,
            RS.c.claimed_at,
            RS.c.version,
        )
        .outerjoin(RS, RS.c.org_id == Organization.id)
        .order_by(Organization.id)
    )
    if org_id is not None:
        stmt = stmt.where(Organization.id == org_id)
    return list(session.execute(stmt))


def due_orgs(
    session: Session,
    now: datetime,
    org_id: uuid.UUID | None = None,
    every: timedelta = TICK_EVERY,
    waiting: dict[uuid.UUID, datetime] | None = None,
) -> list[tuple[uuid.UUID, date, int | None]]:
    """(org id, its local today, state version or None when never ticked) of each due org.

    `waiting`: orgs with work due since a time (a scheduled report): due too unless a tick was
    claimed since then (that tick does the work; the scheduler does not queue it again)."""
    due = []
    waiting = waiting or {}
    for row in organizations(session, org_id):
        today = org_today(row.timezone, now)
        since = waiting.get(row.id)
        if (
            row.version is None
            or row.local_date != today
            or row.claimed_at <= now - every
            or (since is not None and row.claimed_at < since)
        ):
            due.append((row.id, today, row.version))
    return due


def claim(
    session: Session, org_id: uuid.UUID, today: date, now: datetime, version: int | None
) -> bool:
    """Compare-and-set on the org's state row: true for exactly one of concurrent claimers."""
    if version is None:
        stmt = (
            _upsert(session.get_bind().dialect.name)
            .values(org_id=org_id, local_date=today, claimed_at=now, version=1)
            .on_conflict_do_nothing(index_elements=[RS.c.org_id])
            .returning(RS.c.org_id)
        )
        return session.execute(stmt).first() is not None
    result = session.execute(
        update(RS)
        .where(RS.c.org_id == org_id, RS.c.version == version)
        .values(local_date=today, claimed_at=now, version=version + 1)
    )
    return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]


TICK_JOB = "tick_org"


def request_tick(session: Session) -> None:
    """Ask for this org's tick (statuses, then rules, then deliveries) after this commit.

    Writes that change a status or the rules reading it call this, so a revocation is notified
    within seconds, not at the next scheduled tick. One request per transaction, and none while
    an earlier request of the org still waits in the outbox (the tick it starts sees this write).
    """
    waiting = session.scalar(
        select(OutboxMessage.id)
        .where(
            OutboxMessage.org_id == require_org_id(),
            OutboxMessage.actor_name == TICK_JOB,
            OutboxMessage.status == "pending",
        )
        .limit(1)
    )
    if waiting is None:
        request_job(session, TICK_JOB, once=True)
