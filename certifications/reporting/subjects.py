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

from sqlalchemy import ColumnElement, Select, and_, exists, func, literal, or_, select
from sqlalchemy.orm import Session, aliased

from certifications.assignments.models import Assignment
from certifications.assignments.scope import not_exempt
from certifications.catalog.groups import subtree_ids
from certifications.catalog.models import (
    Certification,
    CertificationClient,
    CertificationGroupMember,
)
from certifications.directory.models import SUBJECT_MODELS
from certifications.vocabulary import STATUSES
from infra.dialect import one_of
from tenancy.keys import tenant_join
from tenancy.scoping import run_scoped

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


def _newer_cycle_exists(a: Any) -> ColumnElement[bool]:
    b = _NEWER
    return (
        exists()
        .where(
            b.org_id == a.org_id,
            b.subject_type == a.subject_type,  # completes ix_assignments_subject's key
            b.subject_id == a.subject_id,
            b.certification_id == a.certification_id,
            b.id != a.id,
            or_(
                b.revoked_at.is_(None),
                b.revoked_at > a.revoked_at,
                and_(b.revoked_at == a.revoked_at, b.id > a.id),
            ),
        )
        .correlate(a)
    )


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


def certification_conditions(kind: str, f: ViewFilters) -> list[ColumnElement[bool]]:
    """Which certifications a view lists: filters on the certification, never on the status."""
    conds: list[ColumnElement[bool]] = [
        Certification.archived_at.is_(None),
        Assignment.subject_type == kind,
        current_assignment(),
    ]
    if f.certification_id is not None:
        conds.append(Assignment.certification_id == f.certification_id)
    if f.exempt is not None:
        conds.append(Assignment.exempt_at.is_not(None) if f.exempt else not_exempt(Assignment))
    if f.group_id is not None:
        conds.append(
            Assignment.certification_id.in_(
                select(CertificationGroupMember.certification_id).where(
                    CertificationGroupMember.group_id.in_(subtree_ids(f.group_id))
                )
            )
        )
    if kind == "employee" and f.client_id is not None:
        conds.append(
            Assignment.certification_id.in_(
                select(CertificationClient.certification_id).where(
                    CertificationClient.client_id == f.client_id
                )
            )
        )
    return conds


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
        # Only subjects with at least one matching assignment: the certification applies to them.
        match = (
            select(literal(1))
            .select_from(Assignment)
            .join(Certification, tenant_join(Certification, Assignment, "certification_id"))
            .where(
                Assignment.org_id == model.org_id,
                Assignment.subject_id == model.id,
                *certification_conditions(kind, f),
            )
        )
        if f.status:
            match = match.where(Assignment.status.in_(f.status))
        stmt = stmt.where(match.exists())
    return stmt, [model.name, model.id]


def certification_rows(
    session: Session,
    kind: str,
    f: ViewFilters,
    subject_ids: Sequence[uuid.UUID],
    statuses: Sequence[str] = (),
) -> Select[*tuple[Any, ...]]:
    """The current assignments of these subjects that the view lists (certification filters;
    `statuses` narrows them further), by certification (name, id): each subject's in its
    order. No join to the subject tables: a plan on stale statistics stays the old one."""
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
            one_of(session, Assignment.subject_id, subject_ids), *certification_conditions(kind, f)
        )
        .order_by(Certification.name, Certification.id, Assignment.id)
    )
    return stmt.where(Assignment.status.in_(statuses)) if statuses else stmt


def certification_counts(
    session: Session,
    kind: str,
    f: ViewFilters,
    subject_ids: Sequence[uuid.UUID],
    statuses: Sequence[str] = (),
) -> dict[uuid.UUID, int]:
    """How many rows `certification_rows` has for each of these subjects (absent: none)."""
    stmt = (
        select(Assignment.subject_id, func.count())
        .join(Certification, tenant_join(Certification, Assignment, "certification_id"))
        .where(
            one_of(session, Assignment.subject_id, subject_ids), *certification_conditions(kind, f)
        )
        .group_by(Assignment.subject_id)
    )
    if statuses:
        stmt = stmt.where(Assignment.status.in_(statuses))
    return {sid: n for sid, n in session.execute(stmt)}


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
    stmt = certification_rows(session, kind, f, ids)
    # Core rows (`run_scoped`: the session's tenant criteria and guard): ~1,000 per page.
    if max_entries is None:
        found: Sequence[Any] = run_scoped(session, stmt).all()
    else:
        found = run_scoped(session, stmt.limit(max_entries + 1)).all()
        if len(found) > max_entries:
            keep = leading_within(ids, certification_counts(session, kind, f, ids), max_entries)
            rows = rows[:keep]
            found = run_scoped(session, certification_rows(session, kind, f, ids[:keep])).all()
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
