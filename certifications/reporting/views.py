"""Compliance views (SPEC §6): subjects with their certifications, the group tree, the summary.

Everything here is set-based: a page of subjects costs two statements (the subject page, then
all their assignments), whatever the page size; the group tree and the summary cost two.
"Current" assignments are one per (certification, subject): the live one, or else the most
recently revoked one, so a revoked-then-reassigned certification is never shown twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.orm import Session, aliased

from certifications.assignments.models import Assignment
from certifications.catalog.groups import GroupNode, group_nodes, subtree_ids, top_level
from certifications.catalog.models import (
    Certification,
    CertificationClient,
    CertificationGroupMember,
)
from certifications.directory.models import SUBJECT_MODELS
from certifications.vocabulary import COMPLIANT_STATUSES, STATUSES
from infra.context import require_org_id

CSV_COLUMNS = (
    "subject_type",
    "subject_id",
    "subject_name",
    "subject_external_id",
    "subject_active",
    "certification_id",
    "certification_name",
    "status",
    "required",
    "issued_on",
    "effective_on",
    "expires_on",
    "assignment_id",
)


@dataclass(frozen=True)
class ViewFilters:
    status: tuple[str, ...] = ()
    certification_id: uuid.UUID | None = None
    group_id: uuid.UUID | None = None
    role_id: uuid.UUID | None = None
    client_id: uuid.UUID | None = None
    q: str | None = None
    active: bool | None = None


@dataclass
class SubjectRow:
    """One subject of a view page, with its applicable certifications and a count per status."""

    id: uuid.UUID
    name: str
    external_id: str | None
    active: bool
    extra: dict[str, Any] = field(default_factory=dict)
    certifications: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))

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


def without_jit(session: Session) -> None:
    """Turn PostgreSQL's JIT off for this transaction.

    These statements are short or simple aggregates, but their cost estimates (a correlated
    probe per row, a rare filter under a LIMIT) cross `jit_above_cost`, and compiling then
    takes ~1 s for a query that runs in milliseconds (measured: 921 ms of 1,069 ms).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL jit = off"))


def empty_counts() -> dict[str, int]:
    return dict.fromkeys(STATUSES, 0)


# Built once: a fresh `aliased()` per request costs ~2 ms and defeats the compiled-SQL cache.
_NEWER = aliased(Assignment, name="newer_cycle")


def newer_cycle_exists(a: Any = Assignment) -> ColumnElement[bool]:
    """Another assignment of the same (certification, subject) is live or revoked later."""
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
    return or_(a.revoked_at.is_(None), ~newer_cycle_exists(a))


def _certification_conditions(kind: str, f: ViewFilters) -> list[ColumnElement[bool]]:
    """Which certifications a view lists: filters on the certification, never on the status."""
    conds: list[ColumnElement[bool]] = [
        Certification.archived_at.is_(None),
        Assignment.subject_type == kind,
        current_assignment(),
    ]
    if f.certification_id is not None:
        conds.append(Assignment.certification_id == f.certification_id)
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


def _narrows_certifications(kind: str, f: ViewFilters) -> bool:
    return bool(
        f.status
        or f.certification_id
        or f.group_id
        or (kind == "employee" and f.client_id is not None)
    )


def _join_certification() -> Any:
    return and_(
        Certification.org_id == Assignment.org_id, Certification.id == Assignment.certification_id
    )


def subject_query(kind: str, f: ViewFilters) -> tuple[Select[Any], list[Any]]:
    """The subjects of a view (one ORM entity) and its keyset columns `(name, id)`."""
    model: Any = SUBJECT_MODELS[kind]
    stmt = select(model)
    if f.q:
        stmt = stmt.where(func.lower(model.name).contains(f.q.lower(), autoescape=True))
    if f.active is not None:
        stmt = stmt.where(model.active.is_(f.active))
    if kind == "employee" and f.role_id is not None:
        stmt = stmt.where(model.role_id == f.role_id)
    if kind == "location" and f.client_id is not None:
        stmt = stmt.where(model.client_id == f.client_id)
    if kind == "client" and f.client_id is not None:
        stmt = stmt.where(model.id == f.client_id)
    if _narrows_certifications(kind, f):
        # Only subjects with at least one matching assignment: the certification applies to them.
        match = (
            select(literal(1))
            .select_from(Assignment)
            .join(Certification, _join_certification())
            .where(
                Assignment.org_id == model.org_id,
                Assignment.subject_id == model.id,
                *_certification_conditions(kind, f),
            )
        )
        if f.status:
            match = match.where(Assignment.status.in_(f.status))
        stmt = stmt.where(match.exists())
    return stmt, [model.name, model.id]


def attach_certifications(
    session: Session, kind: str, subjects: Sequence[Any], f: ViewFilters
) -> list[SubjectRow]:
    """The page's subjects with their certifications: one statement for the whole page.

    The summary counts every applicable certification (certification filters applied); the
    listed certifications are also narrowed by `status` when given.
    """
    rows = [_subject_row(kind, s) for s in subjects]
    if not rows:
        return rows
    by_id = {r.id: r for r in rows}
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
        )
        .join(Certification, _join_certification())
        .where(Assignment.subject_id.in_(list(by_id)), *_certification_conditions(kind, f))
        .order_by(Certification.name, Certification.id)
    )
    wanted = set(f.status)
    # Plain tuples: this loop runs once per assignment of the page (50 x 20 at default size).
    for sid, aid, cid, name, status, required, issued, effective, expires in session.execute(stmt):
        row = by_id[sid]
        row.summary[status] += 1
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
            }
        )
    return rows


def _subject_row(kind: str, s: Any) -> SubjectRow:
    extra: dict[str, Any] = {}
    if kind == "employee":
        extra = {"email": s.email, "role_id": s.role_id}
    elif kind == "location":
        extra = {"client_id": s.client_id}
    return SubjectRow(id=s.id, name=s.name, external_id=s.external_id, active=s.active, extra=extra)


def csv_lines(kind: str, rows: Iterable[SubjectRow], f: ViewFilters) -> Iterable[list[str]]:
    """One line per subject per listed certification (a subject without any: one blank line,
    unless a filter asked for certifications). Text that a spreadsheet would run as a formula
    is prefixed with `'`."""
    for r in rows:
        subject = [kind, str(r.id), _cell(r.name), _cell(r.external_id), _bool(r.active)]
        if not r.certifications:
            if not _narrows_certifications(kind, f):
                yield subject + [""] * (len(CSV_COLUMNS) - len(subject))
            continue
        for c in r.certifications:
            yield subject + [
                str(c["certification_id"]),
                _cell(c["name"]),
                c["status"],
                _bool(c["required"]),
                _date(c["issued_on"]),
                _date(c["effective_on"]),
                _date(c["expires_on"]),
                str(c["assignment_id"]),
            ]


def _cell(value: str | None) -> str:
    if not value:
        return ""
    return "'" + value if value[0] in "=+-@\t\r" else value


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _date(value: date | None) -> str:
    return value.isoformat() if value else ""


# --- the group tree and the org-wide summary -------------------------------------------------


@dataclass
class CertificationStats:
    id: uuid.UUID
    name: str
    type: str
    counts: dict[str, int] = field(default_factory=empty_counts)
    required: int = 0
    compliant: int = 0

    def add(self, status: str, required: bool, n: int) -> None:
        self.counts[status] += n
        if required:
            self.required += n
            if status in COMPLIANT_STATUSES:
                self.compliant += n


def compliance_share(required: int, compliant: int) -> float | None:
    """Share of required assignments that are valid (expires soon is still valid)."""
    return round(compliant / required, 4) if required else None


def certification_stats(session: Session) -> dict[uuid.UUID, CertificationStats]:
    """Counts per status of every active certification's current assignments (one statement)."""
    without_jit(session)
    # Live rows and latest revoked rows as two branches: inside an OR, the "latest" probe ran
    # once per revoked row as a subplan and the live rows paid for its estimate.
    org_id = require_org_id()
    cols = (Assignment.certification_id, Assignment.status, Assignment.required)
    live = select(*cols).where(Assignment.org_id == org_id, Assignment.revoked_at.is_(None))
    revoked = select(*cols).where(
        Assignment.org_id == org_id,
        Assignment.revoked_at.is_not(None),
        ~newer_cycle_exists(),
    )
    # Aggregated per branch (a few hundred groups each) and summed below: aggregating the union
    # made PostgreSQL misjudge the group count and sort every row.
    n = func.count().label("n")
    counts = union_all(
        live.add_columns(n).group_by(*cols), revoked.add_columns(n).group_by(*cols)
    ).subquery()
    stmt = (
        select(Certification.id, Certification.name, Certification.type, counts)
        .outerjoin(counts, counts.c.certification_id == Certification.id)
        .where(Certification.archived_at.is_(None))
        .order_by(Certification.name, Certification.id)
    )
    stats: dict[uuid.UUID, CertificationStats] = {}
    for r in session.execute(stmt):
        s = stats.setdefault(r.id, CertificationStats(r.id, r.name, r.type))
        if r.status is not None:
            s.add(r.status, bool(r.required), r.n)
    return stats


def _cert_json(s: CertificationStats) -> dict[str, Any]:
    return {
        "certification_id": s.id,
        "name": s.name,
        "type": s.type,
        "counts": dict(s.counts),
        "required": s.required,
        "compliant": s.compliant,
        "compliance": compliance_share(s.required, s.compliant),
    }


def _rollup(stats: Iterable[CertificationStats]) -> dict[str, Any]:
    counts, required, compliant = empty_counts(), 0, 0
    for s in stats:
        for k, v in s.counts.items():
            counts[k] += v
        required += s.required
        compliant += s.compliant
    return {
        "counts": counts,
        "required": required,
        "compliant": compliant,
        "compliance": compliance_share(required, compliant),
    }


def group_tree(session: Session) -> dict[str, Any]:
    """The group tree; each node lists its own certifications with counts per status, its own
    counts, and `subtree` counts over itself and its descendants (each certification once)."""
    stats = certification_stats(session)
    nodes = group_nodes(session)

    def render(node: GroupNode) -> dict[str, Any]:
        own = sorted(
            (stats[c] for c in set(node.certification_ids) if c in stats),
            key=lambda s: (s.name, str(s.id)),
        )
        return {
            "id": node.id,
            "name": node.name,
            "parent_id": node.parent_id,
            "certifications": [_cert_json(s) for s in own],
            **_rollup(own),
            "subtree": _rollup(stats[c] for c in node.subtree_certification_ids() if c in stats),
            "children": [render(child) for child in node.children],
        }

    grouped = {c for n in nodes.values() for c in n.certification_ids}
    return {
        "groups": [render(n) for n in top_level(nodes)],
        "ungrouped": [_cert_json(s) for s in stats.values() if s.id not in grouped],
    }


def compliance_summary(session: Session) -> dict[str, Any]:
    """Org-wide: per certification, per group (with its subgroups) and in total."""
    stats = certification_stats(session)
    nodes = group_nodes(session)
    groups = []
    for node in nodes.values():
        groups.append(
            {
                "group_id": node.id,
                "name": node.name,
                "parent_id": node.parent_id,
                **_rollup(stats[c] for c in node.subtree_certification_ids() if c in stats),
            }
        )
    return {
        "totals": _rollup(stats.values()),
        "certifications": [_cert_json(s) for s in stats.values()],
        "groups": groups,
    }
