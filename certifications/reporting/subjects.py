"""Subject views (SPEC §6): a page of subjects of one kind, each with its certifications.

Set-based: a page costs two statements (the subject page, then all their assignments), whatever
the page size. "Current" assignments are one per (certification, subject): the live one, or
else the most recently revoked one, so a revoked-then-reassigned certification is never shown
twice (the compliance figures count the same ones, see `reporting.compliance`).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    bindparam,
    exists,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.orm import Session, aliased

from certifications.assignments.models import Assignment
from certifications.assignments.scope import newer_cycle, not_exempt
from certifications.catalog.groups import subtree_ids
from certifications.catalog.models import (
    Certification,
    CertificationClient,
    CertificationGroupMember,
)
from certifications.directory.models import SUBJECT_MODELS
from certifications.vocabulary import STATUSES
from infra.dialect import LIKE_ESCAPE, contains_pattern, one_of_param
from tenancy.keys import tenant_join
from tenancy.scoping import prebuilt_tenant_statement, run_prebuilt

# Certification entries one JSON page may hold: a page of `limit` subjects stops early once its
# subjects' applicable certifications would pass this (500 subjects × 300 certifications would
# be 150,000); `next_cursor` continues with the next subject.
MAX_PAGE_ENTRIES = 20_000


@dataclass(frozen=True)
class ViewFilters:
    """What a subject view lists: its query arguments (`/views/<kind>?status=...`)."""

    status: tuple[str, ...] = ()
    certification_id: uuid.UUID | None = None
    group_id: uuid.UUID | None = None
    role_id: uuid.UUID | None = None
    client_id: uuid.UUID | None = None
    q: str | None = None
    active: bool | None = None
    # Unset `active`: active subjects only, unless `include_inactive` (leavers stay out).
    include_inactive: bool = False
    exempt: bool | None = None  # only exempt (true) or only not exempt (false) assignments


def empty_counts() -> dict[str, int]:
    """A zero count for every status."""
    return dict.fromkeys(STATUSES, 0)


@dataclass
class SubjectRow:
    """One subject of a view page, with its applicable certifications and a count per status."""

    id: uuid.UUID
    name: str
    external_id: str | None
    active: bool
    extra: dict[str, Any] = field(default_factory=dict)
    certifications: list[dict[str, Any]] = field(default_factory=list)
    # Counts per status of the assignments inside compliance, and `exempt` for the others.
    summary: dict[str, int] = field(default_factory=lambda: empty_counts() | {"exempt": 0})

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "external_id": self.external_id,
            "active": self.active,
            **self.extra,
            "certifications": self.certifications,
            "summary": self.summary,
        }


# Built once: a fresh `aliased()` per request costs ~2 ms and defeats the compiled-SQL cache.
_NEWER = aliased(Assignment, name="newer_cycle")


def newer_cycle_exists(a: Any = Assignment) -> ColumnElement[bool]:
    """Another assignment of the same (certification, subject) is live or revoked later."""
    return _NEWER_THAN_ASSIGNMENT() if a is Assignment else _newer_cycle_exists(a)


def _newer_cycle_exists(a: Any, *, prebuilt: bool = False) -> ColumnElement[bool]:
    b = _NEWER
    newer = newer_cycle(a, b)
    if prebuilt:
        return prebuilt_tenant_statement(select(b.id).where(*newer).correlate(a), b).exists()
    return exists().where(*newer).correlate(a)


def current_assignment(a: Any = Assignment) -> ColumnElement[bool]:
    """`a` is the live assignment of its (certification, subject), or the latest revoked one."""
    if a is Assignment:
        return _CURRENT_ASSIGNMENT()
    return or_(a.revoked_at.is_(None), ~newer_cycle_exists(a))


# The two conditions on `Assignment` itself, built once: every views page, export chunk and
# count asks them, and building the correlated EXISTS was ~0.1 ms each time. SQL elements are
# immutable, so one instance serves every statement.
_NEWER_THAN_ASSIGNMENT = functools.cache(lambda: _newer_cycle_exists(Assignment))
_CURRENT_ASSIGNMENT = functools.cache(
    lambda: or_(Assignment.revoked_at.is_(None), ~_NEWER_THAN_ASSIGNMENT())
)
# The same for a statement run by `run_prebuilt`: its nested select scoped as well.
_CURRENT_ASSIGNMENT_PREBUILT = functools.cache(
    lambda: or_(Assignment.revoked_at.is_(None), ~_newer_cycle_exists(Assignment, prebuilt=True))
)


def certification_conditions(
    kind: str, f: ViewFilters, *, prebuilt: bool = False
) -> list[ColumnElement[bool]]:
    """Which certifications a view lists: filters on the certification, never on the status.

    `prebuilt`: for a statement built once per shape of `f` and run by `run_prebuilt`: the
    values are bind parameters named as their filters (`view_params`), never `f`'s, and every
    nested select is scoped with `prebuilt_tenant_statement`."""

    def value(name: str, column: Any) -> Any:
        return bindparam(name, type_=column.type) if prebuilt else getattr(f, name)

    scoped = prebuilt_tenant_statement if prebuilt else _unchanged
    conds: list[ColumnElement[bool]] = [
        Certification.archived_at.is_(None),
        Assignment.subject_type == kind,
        _CURRENT_ASSIGNMENT_PREBUILT() if prebuilt else current_assignment(),
    ]
    if f.certification_id is not None:
        conds.append(
            Assignment.certification_id == value("certification_id", Assignment.certification_id)
        )
    if f.exempt is not None:
        conds.append(Assignment.exempt_at.is_not(None) if f.exempt else not_exempt(Assignment))
    if f.group_id is not None:
        group = value("group_id", CertificationGroupMember.group_id)
        members = select(CertificationGroupMember.certification_id).where(
            CertificationGroupMember.group_id.in_(subtree_ids(group, prebuilt=prebuilt))
        )
        conds.append(Assignment.certification_id.in_(scoped(members, CertificationGroupMember)))
    if kind == "employee" and f.client_id is not None:
        client = value("client_id", CertificationClient.client_id)
        required_by = select(CertificationClient.certification_id).where(
            CertificationClient.client_id == client
        )
        conds.append(Assignment.certification_id.in_(scoped(required_by, CertificationClient)))
    return conds


def _unchanged(stmt: Select[Any], *_tables: Any) -> Select[Any]:
    return stmt


def narrows_certifications(kind: str, f: ViewFilters) -> bool:
    return bool(
        f.status
        or f.exempt is not None
        or f.certification_id
        or f.group_id
        or (kind == "employee" and f.client_id is not None)
    )


def subject_query(
    kind: str, f: ViewFilters, *, require_match: bool = True
) -> tuple[Select[Any], list[Any]]:
    """The subjects of a view (one ORM entity) and its keyset columns `(name, id)`.

    `require_match=False` leaves out the "holds a matching assignment" test of a view that
    narrows certifications, for a caller that joins those assignments itself (the export)."""
    model: Any = SUBJECT_MODELS[kind]
    stmt = select(model)
    if f.q:
        stmt = stmt.where(func.lower(model.name).contains(f.q.lower(), autoescape=True))
    if f.active is not None:
        stmt = stmt.where(model.active.is_(f.active))
    elif not f.include_inactive:
        stmt = stmt.where(model.active.is_(True))
    if kind == "employee" and f.role_id is not None:
        stmt = stmt.where(model.role_id == f.role_id)
    if kind == "location" and f.client_id is not None:
        stmt = stmt.where(model.client_id == f.client_id)
    if kind == "client" and f.client_id is not None:
        stmt = stmt.where(model.id == f.client_id)
    if require_match and narrows_certifications(kind, f):
        stmt = stmt.where(_holds_a_match(kind, f, model))
    return stmt, [model.name, model.id]


def _holds_a_match(
    kind: str, f: ViewFilters, model: Any, prebuilt_for: str | None = None
) -> ColumnElement[bool]:
    """The subject holds at least one matching assignment: the certification applies to it.
    `prebuilt_for`: a dialect's name, for a statement built once (`certification_conditions`)."""
    prebuilt = prebuilt_for is not None
    match = (
        select(literal(1))
        .select_from(Assignment)
        .join(Certification, tenant_join(Certification, Assignment, "certification_id"))
        .where(
            Assignment.org_id == model.org_id,
            Assignment.subject_id == model.id,
            *certification_conditions(kind, f, prebuilt=prebuilt),
        )
    )
    if f.status and prebuilt_for is not None:
        match = match.where(one_of_param(prebuilt_for, Assignment.status, "status"))
    elif f.status:
        match = match.where(Assignment.status.in_(f.status))
    if prebuilt:
        # (the subject's table is listed too: the match reads its columns, correlated)
        match = prebuilt_tenant_statement(match, Assignment, Certification, model)
    return match.exists()


# --- A JSON page, by statements built once per shape ----------------------------------------
#
# A views page built its two statements per request: their construction, the session's tenant
# criteria and guard, SQLAlchemy's cache key and the adaptation of the cached result to the new
# statement were an eighth of its CPU. These are built once per shape of the filters (which are
# used, `active`, `exempt`) with every value a bind parameter (`view_params`), scoped at every
# level by `prebuilt_tenant_statement`, and run by `run_prebuilt` (the tenant from the context).


def filters_shape(f: ViewFilters) -> ViewFilters:
    """`f` with its values replaced by markers: what its statements depend on, their cache key.

    The statements are built from this, never from a request's `f`, so no request's value can
    be built into a statement another request reuses."""
    return ViewFilters(
        status=("<status>",) if f.status else (),
        certification_id=_MARKER if f.certification_id is not None else None,
        group_id=_MARKER if f.group_id is not None else None,
        role_id=_MARKER if f.role_id is not None else None,
        client_id=_MARKER if f.client_id is not None else None,
        q="<q>" if f.q else None,
        active=f.active,
        include_inactive=f.include_inactive if f.active is None else False,
        exempt=f.exempt,
    )


_MARKER = uuid.UUID(int=0)


def view_params(f: ViewFilters) -> dict[str, Any]:
    """The values of the parameters of the statements built for `filters_shape(f)`."""
    params: dict[str, Any] = {
        "certification_id": f.certification_id,
        "group_id": f.group_id,
        "role_id": f.role_id,
        "client_id": f.client_id,
    }
    if f.status:
        params["status"] = list(f.status)
    if f.q:
        params["q"] = contains_pattern(f.q)
    return {name: value for name, value in params.items() if value is not None}


_SUBJECT_COLUMNS = {  # what `SubjectRow` shows of each kind
    "employee": ("email", "role_id"),
    "location": ("client_id",),
}
_STATEMENTS: dict[tuple[Any, ...], Any] = {}
_STATEMENTS_KEPT = 1_000  # shapes are few; a bound all the same


def _kept(key: tuple[Any, ...], build: Any) -> Any:
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        stmt = build()
        if len(_STATEMENTS) >= _STATEMENTS_KEPT:
            _STATEMENTS.clear()
        _STATEMENTS[key] = stmt
    return stmt


def subject_page_statement(dialect_name: str, kind: str, f: ViewFilters) -> Select[Any]:
    """The subjects of a view as `subject_query` selects them, as plain rows of the columns
    `SubjectRow` shows, for `run_prebuilt` with `view_params(f)`; unordered (the caller pages
    it by `(name, id)`). Built once per shape of `f`."""
    shape = filters_shape(f)
    stmt: Select[Any] = _kept(
        ("page", dialect_name, kind, shape), lambda: _subject_page(dialect_name, kind, shape)
    )
    return stmt


def _subject_page(dialect_name: str, kind: str, f: ViewFilters) -> Select[Any]:
    model: Any = SUBJECT_MODELS[kind]
    names = ("id", "name", "external_id", "active", *_SUBJECT_COLUMNS.get(kind, ()))
    stmt = select(*(getattr(model, name) for name in names))
    if f.q:
        stmt = stmt.where(func.lower(model.name).like(bindparam("q"), escape=LIKE_ESCAPE))
    if f.active is not None:
        stmt = stmt.where(model.active.is_(f.active))
    elif not f.include_inactive:
        stmt = stmt.where(model.active.is_(True))
    if kind == "employee" and f.role_id is not None:
        stmt = stmt.where(model.role_id == bindparam("role_id", type_=model.role_id.type))
    if kind == "location" and f.client_id is not None:
        stmt = stmt.where(model.client_id == bindparam("client_id", type_=model.client_id.type))
    if kind == "client" and f.client_id is not None:
        stmt = stmt.where(model.id == bindparam("client_id", type_=model.id.type))
    if narrows_certifications(kind, f):
        stmt = stmt.where(_holds_a_match(kind, f, model, prebuilt_for=dialect_name))
    return prebuilt_tenant_statement(stmt, model)


def _rows_statement(dialect_name: str, kind: str, f: ViewFilters, limited: bool) -> Any:
    """The current assignments of the subjects `ids` that the view lists (certification
    filters), by certification (name, id): each subject's in its order; `limited`: at most
    `rows`. No join to the subject tables: a plan on stale statistics stays the old one."""
    stmt = (
        select(
            Assignment.subject_id,
            Assignment.id,
            Assignment.certification_id,
            Certification.name,
            Assignment.status,
            Assignment.required,
            Assignment.issued_on,
            Assignment.effective_on,
            Assignment.expires_on,
            Assignment.exempt_at,
        )
        .join(Certification, tenant_join(Certification, Assignment, "certification_id"))
        # One array parameter on PostgreSQL: psycopg parses a statement of more than 50
        # parameters anew on every execution (a page has 50 subjects).
        .where(
            one_of_param(dialect_name, Assignment.subject_id, "ids"),
            *certification_conditions(kind, f, prebuilt=True),
        )
        .order_by(Certification.name, Certification.id, Assignment.id)
    )
    if limited:
        stmt = stmt.limit(bindparam("rows", type_=Integer()))
    return prebuilt_tenant_statement(stmt, Assignment, Certification)


def _counts_statement(dialect_name: str, kind: str, f: ViewFilters) -> Any:
    """How many rows `_rows_statement` has for each of the subjects `ids` (absent: none)."""
    stmt = (
        select(Assignment.subject_id, func.count())
        .join(Certification, tenant_join(Certification, Assignment, "certification_id"))
        .where(
            one_of_param(dialect_name, Assignment.subject_id, "ids"),
            *certification_conditions(kind, f, prebuilt=True),
        )
        .group_by(Assignment.subject_id)
    )
    return prebuilt_tenant_statement(stmt, Assignment, Certification)


def certification_rows(
    session: Session,
    kind: str,
    f: ViewFilters,
    subject_ids: Sequence[uuid.UUID],
    limit: int | None = None,
) -> Sequence[Any]:
    """The rows of `_rows_statement` for these subjects (at most `limit`)."""
    dialect, shape = session.get_bind().dialect.name, filters_shape(f)
    stmt = _kept(
        ("rows", dialect, kind, shape, limit is not None),
        lambda: _rows_statement(dialect, kind, shape, limit is not None),
    )
    params = view_params(f) | {"ids": list(subject_ids), "rows": limit}
    return run_prebuilt(session, stmt, params).all()  # type: ignore[no-any-return]


def certification_counts(
    session: Session, kind: str, f: ViewFilters, subject_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """How many rows `certification_rows` has for each of these subjects (absent: none)."""
    dialect, shape = session.get_bind().dialect.name, filters_shape(f)
    stmt = _kept(("counts", dialect, kind, shape), lambda: _counts_statement(dialect, kind, shape))
    found = run_prebuilt(session, stmt, view_params(f) | {"ids": list(subject_ids)})
    return {sid: n for sid, n in found}


def leading_within(
    subject_ids: Sequence[uuid.UUID], counts: dict[uuid.UUID, int], limit: int
) -> int:
    """How many leading subjects have at most `limit` rows together (at least one)."""
    total = 0
    for i, sid in enumerate(subject_ids):
        total += counts.get(sid, 0)
        if total > limit:
            return max(1, i)
    return len(subject_ids)


def attach_certifications(
    session: Session,
    kind: str,
    subjects: Sequence[Any],
    f: ViewFilters,
    max_entries: int | None = None,
) -> list[SubjectRow]:
    """The page's subjects with their certifications: one statement for the whole page.

    The summary counts every applicable certification (certification filters applied); the
    listed certifications are also narrowed by `status` when given. With `max_entries`, only
    the leading subjects whose applicable certifications fit in it are returned (always the
    first one, whole): a page of subjects with very many certifications stops early (two more
    statements, for such a page only).
    """
    rows = [_subject_row(kind, s) for s in subjects]
    if not rows:
        return rows
    ids = [r.id for r in rows]
    if max_entries is None:
        found = certification_rows(session, kind, f, ids)
    else:
        found = certification_rows(session, kind, f, ids, max_entries + 1)
        if len(found) > max_entries:
            keep = leading_within(ids, certification_counts(session, kind, f, ids), max_entries)
            rows = rows[:keep]
            found = certification_rows(session, kind, f, ids[:keep])
    fill_rows(rows, found, f.status)
    return rows


def fill_rows(rows: list[SubjectRow], found: Sequence[Any], statuses: Sequence[str]) -> None:
    """Add each found assignment (`certification_rows`' columns; the last one: exempt or
    not) to its subject's row: its summary, and its certifications when `statuses` allow."""
    # By the UUIDs' integers: a UUID's own hash and equality are Python methods, two calls per
    # row (~0.4 ms a page).
    by_id = {r.id.int: r for r in rows}
    wanted = set(statuses)
    # Plain tuples: this loop runs once per assignment of the page (50 x 20 at default size).
    for sid, aid, cid, name, status, required, issued, effective, expires, exempt_at in found:
        row = by_id[sid.int]
        row.summary["exempt" if exempt_at else status] += 1
        if wanted and status not in wanted:
            continue
        row.certifications.append(
            {
                "certification_id": cid,
                "name": name,
                "status": status,
                "required": required,
                "issued_on": issued,
                "effective_on": effective,
                "expires_on": expires,
                "assignment_id": aid,
                "exempt": bool(exempt_at),
            }
        )


def _subject_row(kind: str, s: Any) -> SubjectRow:
    extra: dict[str, Any] = {}
    if kind == "employee":
        extra = {"email": s.email, "role_id": s.role_id}
    elif kind == "location":
        extra = {"client_id": s.client_id}
    return SubjectRow(id=s.id, name=s.name, external_id=s.external_id, active=s.active, extra=extra)
