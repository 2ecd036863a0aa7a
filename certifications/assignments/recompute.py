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
so no statement holds locks on, or builds a change set of, more than a chunk. Statements are
written on the mapped classes, so the session's tenant criteria scopes them (`org_id` of the
tenant on every read of assignments and certifications, also inside the CTEs); the one it
cannot reach, SQLite's `UPDATE … FROM certifications`, goes through `tenant_statement`.
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
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from certifications.assignments import equivalence
from certifications.assignments.exemptions import lift_expired
from certifications.assignments.models import Assignment, StatusEvent
from certifications.assignments.schedule import mark_recomputed
from certifications.catalog.models import Certification, CertificationEquivalence
from certifications.vocabulary import EXPIRED, EXPIRES_SOON, MISSING, REVOKED, UPCOMING, VALID
from infra.database import UTCDateTime, utcnow
from infra.dialect import new_uuid_sql
from tenancy.models import Organization
from tenancy.organizations import org_today
from tenancy.scoping import tenant_statement

CHUNK_ROWS = 50_000
ID_BATCH = 5_000  # explicit assignment ids per statement (well under SQLite's bind limit)

A = Assignment
C = Certification
E = StatusEvent
# ORM UPDATE as plain set-based SQL: no matching of rows to objects in the session.
_CORE_LIKE = {"synchronize_session": False}

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


def status_case_sql(
    today: date | BindParameter[date], assignments: Any = A, certifications: Any = C
) -> Any:
    """SPEC §4's status of each assignment row on `today`, first match wins (see compute_status).

    `assignments` and `certifications`: the mapped classes (default) or their tables; `today`
    may be a bound parameter (a statement built once: the gate check's past days)."""
    a, c = getattr(assignments, "c", assignments), getattr(certifications, "c", certifications)
    t = today if isinstance(today, BindParameter) else literal(today, Date)
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


def _certification_of_assignment() -> ColumnElement[bool]:
    """The ON clause of assignments JOIN certifications (joined with `Select.join`, which the
    tenant criteria reaches; a join built beforehand and given to select_from it does not)."""
    return and_(C.org_id == A.org_id, C.id == A.certification_id)


def _filters(
    certification_id: uuid.UUID | None, ids: list[uuid.UUID] | None
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if certification_id is not None:
        where.append(A.certification_id == certification_id)
    if ids is not None:
        where.append(A.id.in_(ids))
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
            where.append(A.id >= uuid.UUID(int=i * step))
        if i < parts - 1:
            where.append(A.id < uuid.UUID(int=(i + 1) * step))
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
    session: Session, certification_id: uuid.UUID | None, chunk_rows: int
) -> list[list[ColumnElement[bool]]]:
    """How to cut the org's assignments into statements of about `chunk_rows` rows.

    Small orgs: one statement. On PostgreSQL, an org holding most of the table is cut into heap
    block ranges (each chunk reads only its own pages; id ranges over random UUIDs would make
    the planner scan the whole table once per chunk); otherwise into id ranges, each a small
    slice of the table read through the primary key.
    """
    if chunk_rows <= 0:
        return [[]]
    count_where: list[ColumnElement[bool]] = []  # no join: an index-only count
    if certification_id is not None:
        count_where.append(A.certification_id == certification_id)
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
        tenant_statement(  # the table's size from the catalog: no tenant rows are read
            text(
                "SELECT reltuples, pg_relation_size(oid) / current_setting('block_size')::int"
                " FROM pg_class WHERE oid = 'assignments'::regclass"
            )
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
    """Bring stored statuses up to date for `today`; returns how many rows changed: their
    status (each writes an event) or, with equivalences, only the assignment providing it (a
    stale provider cleared from a certification that lost its `satisfied_by` counts apart).

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
        chunks = [(None, where) for where in _ranges(session, certification_id, chunk_rows)]
    # Certifications with `satisfied_by` get the equivalence-aware statements; the others
    # (every one, in an org without equivalences) keep the plain CASE.
    dependent = equivalence.dependent_certification_ids(session)
    plain_only = not dependent or (
        certification_id is not None and certification_id not in dependent
    )
    dependents_only = certification_id is not None and certification_id in dependent
    changed = 0
    for done, (batch, ranges) in enumerate(chunks, start=1):
        where = _filters(certification_id, batch) + ranges
        if not dependents_only:
            plain = where if plain_only else [*where, A.certification_id.not_in(dependent)]
            if dependent or certification_id is not None or batch is not None:
                changed += _clear_providers(session, now, plain)  # `satisfied_by` emptied
            if dialect == "postgresql":
                changed += _recompute_pg(session, org_id, today, now, plain)
            else:
                changed += _recompute_generic(session, today, now, plain, dialect)
        if not plain_only:
            deps = [*where, A.certification_id.in_(dependent)]
            changed += _recompute_dependents(session, org_id, today, now, deps, dialect)
        if on_chunk is not None:
            on_chunk(done, len(chunks))
    return changed


def recompute_with_dependents(
    session: Session,
    org_id: uuid.UUID,
    today: date,
    assignment_ids: Iterable[uuid.UUID],
    *,
    now: datetime | None = None,
) -> int:
    """`recompute_statuses` of these assignments and of every live assignment of the same
    subjects that an equivalence makes follow them (their certifications' dependents)."""
    ids = list(dict.fromkeys(assignment_ids))
    return recompute_statuses(
        session, org_id, today, assignment_ids=ids + dependents_of_ids(session, ids), now=now
    )


def follow_fanout(
    session: Session,
    org_id: uuid.UUID,
    today: date,
    *,
    certification_id: uuid.UUID | None = None,
    subject_ids: Iterable[uuid.UUID] | None = None,
    now: datetime | None = None,
) -> int:
    """After a role fan-out created or removed rows (of one certification, or of these
    subjects): the rows an equivalence ties to them take their status now, not at the next
    tick. Nothing to do (one query) in an org without equivalences."""
    dependent = equivalence.dependent_certification_ids(session)
    if not dependent:
        return 0
    if certification_id is not None:
        affected = {c for c in dependent if c == certification_id} | set(
            equivalence.dependent_certification_ids(session, [certification_id])
        )
        return sum(
            recompute_statuses(session, org_id, today, certification_id=c, now=now)
            for c in sorted(affected)
        )
    subjects = list(dict.fromkeys(subject_ids or []))
    ids: list[uuid.UUID] = []
    for batch in _batches(subjects, ID_BATCH):
        ids += session.scalars(
            select(A.id).where(A.subject_id.in_(batch), A.certification_id.in_(dependent))
        )
    return recompute_statuses(session, org_id, today, assignment_ids=ids, now=now) if ids else 0


def dependents_of_ids(session: Session, assignment_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """Live assignments whose status may come from these (provider) assignments: same subject,
    a certification whose `satisfied_by` lists theirs. Revoked or not, deleted or not: a
    provider that went away is exactly when its dependents must be looked at again."""
    if not assignment_ids or not equivalence.dependent_certification_ids(session):
        return []
    p = aliased(Assignment, name="provider")
    eq = CertificationEquivalence
    found: list[uuid.UUID] = []
    for batch in _batches(assignment_ids, ID_BATCH):
        found += session.scalars(
            select(A.id)
            .join(eq, and_(eq.org_id == A.org_id, eq.certification_id == A.certification_id))
            .join(
                p,
                and_(
                    p.org_id == A.org_id,
                    p.certification_id == eq.provider_id,
                    p.subject_type == A.subject_type,
                    p.subject_id == A.subject_id,
                ),
            )
            .where(p.id.in_(batch), A.revoked_at.is_(None))
            .distinct()
        )
    return found


def _event_columns() -> list[Any]:
    return [
        E.org_id,
        E.id,
        E.assignment_id,
        E.cycle,
        E.from_status,
        E.to_status,
        E.on_date,
        E.created_at,
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
            A.id,
            A.cycle,
            A.status.label("old_status"),
            new_status.label("new_status"),
        )
        .select_from(A)
        .join(C, _certification_of_assignment())
        .where(*where, new_status != A.status)
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
            literal_column("assignments.ctid") == any_(changed_tids),
            A.id == changed.c.id,
        )
        .values(status=changed.c.new_status, status_changed_at=now, updated_at=now)
        .add_cte(events)
    )
    return session.execute(stmt, execution_options=_CORE_LIKE).rowcount  # type: ignore[attr-defined,no-any-return]


def _recompute_generic(
    session: Session,
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
                A.org_id,
                new_uuid_sql(dialect),
                A.id,
                A.cycle,
                A.status,
                new_status,
                literal(today, Date),
                literal(now, UTCDateTime),
            )
            .select_from(A)
            .join(C, _certification_of_assignment())
            .where(*where, new_status != A.status),
        )
    )
    # UPDATE … FROM: the criteria binds only the updated table, so the joined one is scoped here.
    stmt = tenant_statement(
        update(A)
        .where(
            C.org_id == A.org_id,
            C.id == A.certification_id,
            *where,
            new_status != A.status,
        )
        .values(status=new_status, status_changed_at=now, updated_at=now),
        C,
    )
    return session.execute(stmt, execution_options=_CORE_LIKE).rowcount  # type: ignore[attr-defined,no-any-return]


def _recompute_dependents(
    session: Session,
    org_id: uuid.UUID,
    today: date,
    now: datetime,
    where: list[ColumnElement[bool]],
    dialect: str,
) -> int:
    """The assignments of certifications with `satisfied_by`: status and `satisfied_via_id`
    from the best of their own record and their subject's provider records
    (`equivalence.best_providers`). A status change writes an event; a change of provider
    alone (valid via OSHA 30 instead of valid on its own) only moves `satisfied_via_id`."""
    best = equivalence.best_providers(today, where, status_case_sql)
    own = status_case_sql(today)
    new_status, new_via = equivalence.effective_sql(own, best)
    differs = or_(new_status != A.status, new_via.is_distinct_from(A.satisfied_via_id))
    changed_select: Any = (
        select(
            A.id,
            *(
                [literal_column("assignments.ctid").label("row_ctid")]
                if dialect == "postgresql"
                else []
            ),
            A.cycle,
            A.status.label("old_status"),
            new_status.label("new_status"),
            new_via.label("new_via"),
        )
        .select_from(A)
        .join(C, _certification_of_assignment())
        .outerjoin(best, best.c.dependent_id == A.id)
        .where(*where, differs)
    )
    if dialect == "postgresql":
        changed = changed_select.with_for_update(of=A).cte("changed")
        event_source = select(
            literal(org_id, Uuid),
            new_uuid_sql(dialect),
            changed.c.id,
            changed.c.cycle,
            changed.c.old_status,
            changed.c.new_status,
            literal(today, Date),
            literal(now, UTCDateTime),
        ).where(changed.c.old_status != changed.c.new_status)
        events = insert(E).from_select(_event_columns(), event_source).cte("events")
        # By physical address, as `_recompute_pg` (the locked rows cannot move meanwhile).
        changed_tids: ColumnElement[Any] = literal_column(
            "ARRAY(SELECT changed.row_ctid FROM changed)"
        )
        stmt = (
            update(A)
            .where(literal_column("assignments.ctid") == any_(changed_tids), A.id == changed.c.id)
            .values(**_dependent_values(changed, now))
            .add_cte(events)
        )
        return session.execute(stmt, execution_options=_CORE_LIKE).rowcount  # type: ignore[attr-defined,no-any-return]
    # SQLite (one writer): count and events from the same SELECT, then the UPDATE … FROM it
    # (whose row count Python's sqlite3 does not report: the statement starts with WITH).
    count = session.execute(select(func.count()).select_from(changed_select.subquery())).scalar()
    if not count:
        return 0
    events_from = changed_select.cte("changed_for_events")
    session.execute(
        insert(E).from_select(
            _event_columns(),
            select(
                literal(org_id, Uuid),
                new_uuid_sql(dialect),
                events_from.c.id,
                events_from.c.cycle,
                events_from.c.old_status,
                events_from.c.new_status,
                literal(today, Date),
                literal(now, UTCDateTime),
            ).where(events_from.c.old_status != events_from.c.new_status),
        )
    )
    changed = changed_select.cte("changed")
    stmt = update(A).where(A.id == changed.c.id).values(**_dependent_values(changed, now))
    session.execute(stmt, execution_options=_CORE_LIKE)
    return int(count)


def _clear_providers(session: Session, now: datetime, where: list[ColumnElement[bool]]) -> int:
    """Rows of certifications without `satisfied_by` (any more) provide their own status."""
    stmt = (
        update(A)
        .where(*where, A.satisfied_via_id.is_not(None))
        .values(satisfied_via_id=None, updated_at=now)
    )
    result = session.execute(stmt, execution_options=_CORE_LIKE)
    return max(result.rowcount or 0, 0)  # type: ignore[attr-defined]


def _dependent_values(changed: Any, now: datetime) -> dict[str, Any]:
    moved = changed.c.old_status != changed.c.new_status
    return {
        "status": changed.c.new_status,
        "satisfied_via_id": changed.c.new_via,
        "status_changed_at": case((moved, now), else_=A.status_changed_at),
        "updated_at": now,
    }


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
    effective = func.coalesce(A.effective_on, A.issued_on)
    computed = expiry_sql(dialect, effective, cert.validity_months, cert.validity_days)
    stmt = (
        update(A)
        .where(
            A.certification_id == certification_id,
            A.expires_explicit == false(),
            A.revoked_at.is_(None),
            A.expires_on.is_distinct_from(computed),
        )
        .values(expires_on=computed, updated_at=utcnow())
    )
    return session.execute(stmt, execution_options=_CORE_LIKE).rowcount  # type: ignore[attr-defined,no-any-return]


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
    """After a certification's `validity`, `warning_days` or `satisfied_by` changed: statuses
    of its assignments and of the certifications it satisfies, after moving computed expiries
    of current cycles only when `apply_to_current` (a recorded expiry does not move otherwise);
    `expiries` = how many moved. Flushes only."""
    org = session.get(Organization, org_id)
    if org is None:
        return {"expiries": 0, "changed": 0}
    today = org_today(org.timezone, now)
    expiries = refresh_expiries(session, org_id, certification_id) if apply_to_current else 0
    changed = recompute_statuses(session, org_id, today, certification_id=certification_id, now=now)
    # Certifications it satisfies follow it (their holders' provider records changed).
    for dependent in equivalence.dependent_certification_ids(session, [certification_id]):
        if dependent != certification_id:
            changed += recompute_statuses(
                session, org_id, today, certification_id=dependent, now=now
            )
    return {"expiries": expiries, "changed": changed}
