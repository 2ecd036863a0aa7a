"""Status recomputation as set-based SQL: the rules of `assignments.status`, in the database.

`status_case_sql(today)` is SPEC §4's first-match-wins list as one `CASE` over `assignments`
joined to `certifications`; a Hypothesis test keeps it in agreement with `compute_status`.

`recompute_statuses` never loads assignments into Python. Per chunk of assignments it writes one
`status_events` row for every assignment whose status changes and updates exactly those rows:

* PostgreSQL: one statement, `WITH changed AS (SELECT … FOR UPDATE OF assignments),
  events AS (INSERT INTO status_events SELECT … FROM changed) UPDATE assignments … FROM changed`,
  so the CASE is evaluated once per row. `FOR UPDATE` makes a concurrent recompute of the same
  rows wait and re-check them, so a change is recorded once, never twice.
* SQLite (embedded default): `INSERT … SELECT … WHERE new <> status`, then the same `UPDATE`
  (writers are serialized there, so the two statements see the same rows).

Large orgs are chunked by ranges of the (random UUID) id, about `chunk_rows` rows per statement,
so no statement holds locks on, or builds a change set of, more than a chunk. Every Core
statement filters `org_id` itself (the ORM tenant filter does not apply to Core).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Date,
    Integer,
    Interval,
    Uuid,
    and_,
    any_,
    case,
    cast,
    false,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from certifications.assignments.exemptions import lift_expired
from certifications.assignments.models import Assignment, StatusEvent
from certifications.assignments.schedule import mark_recomputed
from certifications.catalog.models import Certification
from certifications.vocabulary import EXPIRED, EXPIRES_SOON, MISSING, REVOKED, UPCOMING, VALID
from infra.database import UTCDateTime, utcnow
from infra.dialect import new_uuid_sql
from tenancy.models import Organization
from tenancy.organizations import org_today

CHUNK_ROWS = 50_000
ID_BATCH = 5_000  # explicit assignment ids per statement (well under SQLite's bind limit)

A = Assignment.__table__
C = Certification.__table__
E = StatusEvent.__table__

ChunkCallback = Callable[[int, int], None]  # (chunks done, chunks total)


class days_between(FunctionElement[int]):  # noqa: N801 - reads like the SQL function it is
    """`later - earlier` in whole days (PostgreSQL date subtraction; SQLite julianday)."""

    type = Integer()
    inherit_cache = True
    name = "days_between"


@compiles(days_between)
def _days_between_default(element: days_between, compiler: Any, **kw: Any) -> str:
    later, earlier = list(element.clauses)
    return f"({compiler.process(later, **kw)} - {compiler.process(earlier, **kw)})"


@compiles(days_between, "sqlite")
def _days_between_sqlite(element: days_between, compiler: Any, **kw: Any) -> str:
    later, earlier = list(element.clauses)
    return (
        f"(julianday({compiler.process(later, **kw)})"
        f" - julianday({compiler.process(earlier, **kw)}))"
    )


def status_case_sql(today: date, assignments: Any = A, certifications: Any = C) -> Any:
    """SPEC §4's status of each assignment row on `today`, first match wins (see compute_status)."""
    a, c = assignments.c, certifications.c
    t = literal(today, Date)
    return case(
        (a.revoked_at.is_not(None), REVOKED),
        (
            or_(
                a.issued_on.is_(None),
                and_(c.forms_required == true(), a.form_accepted_at.is_(None)),
            ),
            MISSING,
        ),
        (func.coalesce(a.effective_on, a.issued_on) > t, UPCOMING),
        (a.expires_on.is_(None), VALID),
        (a.expires_on < t, EXPIRED),
        (days_between(a.expires_on, t) <= c.warning_days, EXPIRES_SOON),
        else_=VALID,
    )


def _joined() -> Any:
    return A.join(C, and_(C.c.org_id == A.c.org_id, C.c.id == A.c.certification_id))


def _filters(
    org_id: uuid.UUID, certification_id: uuid.UUID | None, ids: list[uuid.UUID] | None
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [A.c.org_id == org_id, C.c.org_id == org_id]
    if certification_id is not None:
        where.append(A.c.certification_id == certification_id)
    if ids is not None:
        where.append(A.c.id.in_(ids))
    return where


def _id_ranges(parts: int) -> Iterator[list[ColumnElement[bool]]]:
    """`parts` contiguous ranges covering the whole UUID space (random ids spread evenly)."""
    if parts <= 1:
        yield []
        return
    step = (1 << 128) // parts
    for i in range(parts):
        where: list[ColumnElement[bool]] = []
        if i > 0:
            where.append(A.c.id >= uuid.UUID(int=i * step))
        if i < parts - 1:
            where.append(A.c.id < uuid.UUID(int=(i + 1) * step))
        yield where


def _block_ranges(parts: int, blocks: int) -> Iterator[list[ColumnElement[bool]]]:
    """`parts` contiguous ranges of heap blocks (PostgreSQL TID range scans); the last one is
    open-ended, so rows moved to blocks added meanwhile are still seen."""
    step = max(1, math.ceil(blocks / parts))
    ctid: ColumnElement[Any] = literal_column("assignments.ctid")
    for i in range(parts):
        where: list[ColumnElement[bool]] = []
        if i > 0:
            where.append(ctid >= literal_column(f"'({i * step},0)'::tid"))
        if i < parts - 1:
            where.append(ctid < literal_column(f"'({(i + 1) * step},0)'::tid"))
        yield where


def _ranges(
    session: Session, org_id: uuid.UUID, certification_id: uuid.UUID | None, chunk_rows: int
) -> list[list[ColumnElement[bool]]]:
    """How to cut the org's assignments into statements of about `chunk_rows` rows.

    Small orgs: one statement. On PostgreSQL, an org holding most of the table is cut into heap
    block ranges (each chunk reads only its own pages; id ranges over random UUIDs would make
    the planner scan the whole table once per chunk); otherwise into id ranges, each a small
    slice of the table read through the primary key.
    """
    if chunk_rows <= 0:
        return [[]]
    count_where = [A.c.org_id == org_id]  # no join: an index-only count
    if certification_id is not None:
        count_where.append(A.c.certification_id == certification_id)
    count = session.execute(select(func.count()).select_from(A).where(*count_where)).scalar_one()
    parts = math.ceil(count / chunk_rows)
    if parts <= 1:
        return [[]]
    blocks = _heap_blocks_if_dominant(session, count)
    if blocks is not None:
        return list(_block_ranges(parts, blocks))
    return list(_id_ranges(parts))


def _heap_blocks_if_dominant(session: Session, count: int) -> int | None:
    """PostgreSQL: the table's heap block count when the org holds at least half its rows."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    table_rows, blocks = session.execute(
        text(
            "SELECT reltuples, pg_relation_size(oid) / current_setting('block_size')::int"
            " FROM pg_class WHERE oid = 'assignments'::regclass"
        )
    ).one()
    if count * 2 >= max(table_rows, count):
        return max(int(blocks), 1)
    return None


def _batches(ids: list[uuid.UUID], size: int) -> Iterable[list[uuid.UUID]]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


def recompute_statuses(
    session: Session,
    org_id: uuid.UUID,
    today: date,
    *,
    assignment_ids: Iterable[uuid.UUID] | None = None,
    certification_id: uuid.UUID | None = None,
    now: datetime | None = None,
    chunk_rows: int = CHUNK_ROWS,
    on_chunk: ChunkCallback | None = None,
) -> int:
    """Bring stored statuses up to date for `today`; returns how many changed (= events written).

    Scope: the whole org, one certification's assignments, and/or explicit assignment ids.
    Only flushes; the caller commits (`on_chunk(done, total)` runs after each chunk, e.g. to
    commit and report progress in a long job).
    """
    now = now or utcnow()
    dialect = session.get_bind().dialect.name
    chunks: list[tuple[list[uuid.UUID] | None, list[ColumnElement[bool]]]]
    if assignment_ids is not None:
        ids = list(dict.fromkeys(assignment_ids))
        if not ids:
            return 0
        chunks = [(batch, []) for batch in _batches(ids, ID_BATCH)]
    else:
        chunks = [(None, where) for where in _ranges(session, org_id, certification_id, chunk_rows)]
    changed = 0
    for done, (batch, ranges) in enumerate(chunks, start=1):
        where = _filters(org_id, certification_id, batch) + ranges
        if dialect == "postgresql":
            changed += _recompute_pg(session, org_id, today, now, where)
        else:
            changed += _recompute_generic(session, org_id, today, now, where, dialect)
        if on_chunk is not None:
            on_chunk(done, len(chunks))
    return changed


def _event_columns() -> list[Any]:
    return [
        E.c.org_id,
        E.c.id,
        E.c.assignment_id,
        E.c.cycle,
        E.c.from_status,
        E.c.to_status,
        E.c.on_date,
        E.c.created_at,
    ]


def _recompute_pg(
    session: Session,
    org_id: uuid.UUID,
    today: date,
    now: datetime,
    where: list[ColumnElement[bool]],
) -> int:
    new_status = status_case_sql(today)
    changed = (
        select(
            literal_column("assignments.ctid").label("row_ctid"),
            A.c.id,
            A.c.cycle,
            A.c.status.label("old_status"),
            new_status.label("new_status"),
        )
        .select_from(_joined())
        .where(*where, new_status != A.c.status)
        .with_for_update(of=A)
        .cte("changed")
    )
    events = (
        insert(E)
        .from_select(
            _event_columns(),
            select(
                literal(org_id, Uuid),
                new_uuid_sql("postgresql"),
                changed.c.id,
                changed.c.cycle,
                changed.c.old_status,
                changed.c.new_status,
                literal(today, Date),
                literal(now, UTCDateTime),
            ),
        )
        .cte("events")
    )
    # PostgreSQL estimates `CASE … <> status` to keep ~all rows, so joining `changed` by id
    # alone plans a hash join over a second full scan of assignments. `ctid = ANY(ARRAY(…))`
    # fetches just the changed rows by their physical address instead (a TID scan; the rows are
    # locked FOR UPDATE by `changed`, so their addresses cannot move before this UPDATE).
    changed_tids: ColumnElement[Any] = literal_column("ARRAY(SELECT changed.row_ctid FROM changed)")
    stmt = (
        update(A)
        .where(
            A.c.org_id == org_id,
            literal_column("assignments.ctid") == any_(changed_tids),
            A.c.id == changed.c.id,
        )
        .values(status=changed.c.new_status, status_changed_at=now, updated_at=now)
        .add_cte(events)
    )
    return session.execute(stmt).rowcount  # type: ignore[attr-defined,no-any-return]


def _recompute_generic(
    session: Session,
    org_id: uuid.UUID,
    today: date,
    now: datetime,
    where: list[ColumnElement[bool]],
    dialect: str,
) -> int:
    new_status = status_case_sql(today)
    session.execute(
        insert(E).from_select(
            _event_columns(),
            select(
                A.c.org_id,
                new_uuid_sql(dialect),
                A.c.id,
                A.c.cycle,
                A.c.status,
                new_status,
                literal(today, Date),
                literal(now, UTCDateTime),
            )
            .select_from(_joined())
            .where(*where, new_status != A.c.status),
        )
    )
    stmt = (
        update(A)
        .where(
            C.c.org_id == A.c.org_id,
            C.c.id == A.c.certification_id,
            *where,
            new_status != A.c.status,
        )
        .values(status=new_status, status_changed_at=now, updated_at=now)
    )
    return session.execute(stmt).rowcount  # type: ignore[attr-defined,no-any-return]


def expiry_sql(dialect: str, effective: Any, months: int | None, days: int | None) -> Any:
    """`effective + validity` in SQL, calendar months clamped to month end (as add_months)."""
    if months:
        if dialect == "postgresql":
            # date + interval 'n months' clamps to the last day of a shorter month.
            return cast(effective + func.make_interval(0, months, type_=Interval), Date)
        # SQLite's '+n months' overflows into the next month (Jan 31 + 1 = Mar 3): take the
        # same day of the target month, clamped to that month's last day.
        first = func.date(effective, "start of month", f"+{months} months")
        last = func.date(effective, "start of month", f"+{months + 1} months", "-1 day")
        offset = cast(func.strftime("%d", effective), Integer) - 1
        same_day = func.date(first, literal("+").concat(offset.self_group()).concat(" days"))
        return func.min(same_day, last)
    if days:
        if dialect == "postgresql":
            return effective + days
        return func.date(effective, f"+{days} days")
    return literal(None, Date)


def refresh_expiries(session: Session, org_id: uuid.UUID, certification_id: uuid.UUID) -> int:
    """Recompute computed (not explicit) expiries of a certification's live assignments after its
    `validity` changed; returns how many changed. Statuses are recomputed separately."""
    cert = session.get(Certification, certification_id)
    if cert is None:
        return 0
    dialect = session.get_bind().dialect.name
    effective = func.coalesce(A.c.effective_on, A.c.issued_on)
    computed = expiry_sql(dialect, effective, cert.validity_months, cert.validity_days)
    stmt = (
        update(A)
        .where(
            A.c.org_id == org_id,
            A.c.certification_id == certification_id,
            A.c.expires_explicit == false(),
            A.c.revoked_at.is_(None),
            A.c.expires_on.is_distinct_from(computed),
        )
        .values(expires_on=computed, updated_at=utcnow())
    )
    return session.execute(stmt).rowcount  # type: ignore[attr-defined,no-any-return]


# --- Per organization -----------------------------------------------------------------------


def recompute_org(
    session: Session,
    org_id: uuid.UUID,
    now: datetime,
    *,
    on_chunk: ChunkCallback | None = None,
) -> dict[str, Any]:
    """Recompute every assignment of one org for today in its time zone; flushes only."""
    org = session.get(Organization, org_id)
    if org is None:
        return {"changed": 0}
    today = org_today(org.timezone, now)
    ended = lift_expired(session, org_id, today, now)  # exemptions whose `until` has passed
    changed = recompute_statuses(session, org_id, today, now=now, on_chunk=on_chunk)
    mark_recomputed(session, org_id, today, now, changed)
    return {"today": today.isoformat(), "changed": changed, "exemptions_ended": ended}


def recompute_certification(
    session: Session,
    org_id: uuid.UUID,
    certification_id: uuid.UUID,
    now: datetime,
    *,
    apply_to_current: bool = False,
) -> dict[str, Any]:
    """After a certification's `validity` or `warning_days` changed: statuses of its
    assignments, after moving computed expiries of current cycles only when `apply_to_current`
    (a recorded expiry does not move otherwise); `expiries` = how many moved. Flushes only."""
    org = session.get(Organization, org_id)
    if org is None:
        return {"expiries": 0, "changed": 0}
    today = org_today(org.timezone, now)
    expiries = refresh_expiries(session, org_id, certification_id) if apply_to_current else 0
    changed = recompute_statuses(session, org_id, today, certification_id=certification_id, now=now)
    return {"expiries": expiries, "changed": changed}
