"""Site and client workforce views (issue 15): who works there on a date, and is each of them
holding what the site (or client) requires of its members?

The certifications a site requires of its members are the employee certifications naming it in
`location_ids` and those naming its client in `client_ids` (as the gate check counts them); a
client's are those naming it in `client_ids`. Each (member, certification) entry takes the
status of the member's current record on the date (`status_case_sql`, missing without one), or,
for a certification with `satisfied_by`, the member's record of a provider when its status is
better (`assignments.equivalence`'s rule: a revoked record stays revoked; `satisfied_via`). On a
past day (`when`) the records and statuses are those of history (`history.asof.as_of_rows`:
the cycle then in effect, revocations and exemptions as they stood); the roster is the
memberships covering the day. Set-based: a page costs two statements (members, then their
entries); the clients/locations views add two per page (member counts, then entry counts per
status).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any

from sqlalchemy import and_, case, false, func, select, union_all
from sqlalchemy.orm import Session, aliased

from certifications.assignments.equivalence import PROVIDING, rank_sql
from certifications.assignments.models import Assignment
from certifications.assignments.recompute import status_case_sql
from certifications.assignments.requirements import on_date
from certifications.catalog.models import (
    Certification,
    CertificationClient,
    CertificationEquivalence,
    CertificationLocation,
)
from certifications.directory.memberships import Target
from certifications.directory.models import Employee, Location, Membership
from certifications.history.asof import AsOf, as_of_rows
from certifications.reporting.subjects import current_assignment, empty_counts
from certifications.vocabulary import MISSING, REVOKED

A, C, E, M = Assignment, Certification, Employee, Membership
CL, CC, EQ = CertificationLocation, CertificationClient, CertificationEquivalence


def required_here(target: Target) -> Any:
    """(owner_id, certification_id) of the employee certifications each location / client
    requires of its members, as a subquery."""
    live = and_(C.type == "employee", C.archived_at.is_(None))
    if target.entity == "client":
        stmt = (
            select(CC.client_id.label("owner_id"), CC.certification_id.label("certification_id"))
            .join(C, and_(C.org_id == CC.org_id, C.id == CC.certification_id))
            .where(live)
        )
        return stmt.subquery("required_here")
    own = (
        select(CL.location_id.label("owner_id"), CL.certification_id.label("certification_id"))
        .join(C, and_(C.org_id == CL.org_id, C.id == CL.certification_id))
        .where(live)
    )
    of_client = (
        select(Location.id.label("owner_id"), CC.certification_id.label("certification_id"))
        .join(CC, and_(CC.org_id == Location.org_id, CC.client_id == Location.client_id))
        .join(C, and_(C.org_id == CC.org_id, C.id == CC.certification_id))
        .where(live)
    )
    return union_all(own, of_client).subquery("required_here")


def _records(on: date, when: AsOf | None, subjects: Any) -> Any:
    """(assignment_id, certification_id, subject_id, status, expires_on, exempt): each of these
    employees' current record of each certification, its own status on `on` (today on: the
    stored row projected to the day; a past day `when`: as it stood, from history). A CTE: the
    entries read it twice (own records, providers), built and planned once."""
    if when is not None:
        h = as_of_rows(when, include_inactive=True, subject_ids=subjects)
        return (
            select(
                h.c.assignment_id,
                h.c.certification_id,
                h.c.subject_id,
                h.c.status,
                h.c.expires_on,
                h.c.exempt,
            )
            .where(h.c.subject_type == "employee")
            .cte("records")
        )
    return (
        select(
            A.id.label("assignment_id"),
            A.certification_id,
            A.subject_id,
            status_case_sql(on).label("status"),
            A.expires_on,
            A.exempt_at.is_not(None).label("exempt"),
        )
        .join(C, and_(C.org_id == A.org_id, C.id == A.certification_id))
        .where(A.subject_type == "employee", A.subject_id.in_(subjects), current_assignment(A))
        .cte("records")
    )


def _best_providers(r: Any) -> Any:
    """(subject_id, dependent_id, provider_id, provider_certification_id, status, expires_on):
    for each (employee, certification with `satisfied_by`), the employee's best live record of
    a provider that can provide (valid, expires soon, upcoming; ties: the smallest id), as
    `equivalence.best_providers` picks it; `r`: `_records`."""
    ranked = (
        select(
            r.c.subject_id,
            EQ.certification_id.label("dependent_id"),
            r.c.assignment_id.label("provider_id"),
            r.c.certification_id.label("provider_certification_id"),
            r.c.status,
            r.c.expires_on,
            func.row_number()
            .over(
                partition_by=[r.c.subject_id, EQ.certification_id],
                order_by=[rank_sql(r.c.status).desc(), r.c.assignment_id],
            )
            .label("pick"),
        )
        .select_from(r)
        .join(EQ, EQ.provider_id == r.c.certification_id)
        .where(r.c.status.in_(PROVIDING))  # revoked and expired records provide nothing
        .subquery("ranked")
    )
    return select(ranked).where(ranked.c.pick == 1).subquery("best")


def _entries(
    target: Target,
    owner_ids: Sequence[uuid.UUID] | None,
    on: date,
    when: AsOf | None = None,
    employee_ids: Sequence[uuid.UUID] | None = None,
) -> Any:
    """(owner_id, employee_id, certification_id, certification_name, assignment_id, expires_on,
    exempt, status, satisfied_via_id, via_certification_id, via_certification_name) of every
    member on `on` × each certification required there: the effective status (its own record,
    or an equivalent's when better; a revoked record stays revoked)."""
    req = required_here(target)
    owner = target.of(M)
    roster = select(M.employee_id).where(on_date(M, on))
    if owner_ids is not None:
        roster = roster.where(owner.in_(list(owner_ids)))
    if employee_ids is not None:
        roster = roster.where(M.employee_id.in_(list(employee_ids)))
    own = _records(on, when, roster)
    best = _best_providers(own)
    via_cert = aliased(Certification, name="via_certification")
    own_status = func.coalesce(own.c.status, MISSING)
    better = and_(own_status != REVOKED, rank_sql(best.c.status) > rank_sql(own_status))
    stmt = (
        select(
            owner.label("owner_id"),
            M.employee_id.label("employee_id"),
            C.id.label("certification_id"),
            C.name.label("certification_name"),
            own.c.assignment_id.label("assignment_id"),
            case((better, best.c.expires_on), else_=own.c.expires_on).label("expires_on"),
            func.coalesce(own.c.exempt, false()).label("exempt"),
            case((better, best.c.status), else_=own_status).label("status"),
            case((better, best.c.provider_id), else_=None).label("satisfied_via_id"),
            case((better, via_cert.id), else_=None).label("via_certification_id"),
            case((better, via_cert.name), else_=None).label("via_certification_name"),
        )
        .select_from(M)
        .join(E, and_(E.org_id == M.org_id, E.id == M.employee_id))
        .join(req, req.c.owner_id == owner)
        .join(C, and_(C.org_id == M.org_id, C.id == req.c.certification_id))
        .outerjoin(own, and_(own.c.subject_id == M.employee_id, own.c.certification_id == C.id))
        .outerjoin(best, and_(best.c.subject_id == M.employee_id, best.c.dependent_id == C.id))
        .outerjoin(
            via_cert,
            and_(via_cert.org_id == M.org_id, via_cert.id == best.c.provider_certification_id),
        )
        .where(on_date(M, on), E.active.is_(True))
        .distinct()  # two memberships of one member on the same day
    )
    if owner_ids is not None:
        stmt = stmt.where(owner.in_(list(owner_ids)))
    if employee_ids is not None:
        stmt = stmt.where(M.employee_id.in_(list(employee_ids)))
    return stmt


def members_statement(
    target: Target,
    target_id: uuid.UUID,
    on: date,
    statuses: Sequence[str],
    when: AsOf | None = None,
) -> Any:
    """The members on `on` (optionally: with an entry in one of `statuses`); paged by (name, id)."""
    on_roster = select(M.employee_id).where(target.of(M) == target_id, on_date(M, on))
    stmt = select(E).where(E.id.in_(on_roster), E.active.is_(True))
    if statuses:
        entries = _entries(target, [target_id], on, when).subquery("entries")
        matching = select(entries.c.employee_id).where(entries.c.status.in_(list(statuses)))
        stmt = stmt.where(E.id.in_(matching))
    return stmt


def member_rows(
    session: Session,
    target: Target,
    target_id: uuid.UUID,
    members: Sequence[Employee],
    on: date,
    statuses: Sequence[str],
    when: AsOf | None = None,
) -> list[dict[str, Any]]:
    """The page's members, each with its required certifications there and their statuses."""
    ids = [m.id for m in members]
    by_member: dict[uuid.UUID, list[dict[str, Any]]] = {i: [] for i in ids}
    if ids:
        entries = _entries(target, [target_id], on, when, employee_ids=ids)
        for row in session.execute(entries):
            if statuses and row.status not in statuses:
                continue
            by_member[row.employee_id].append(
                {
                    "certification_id": row.certification_id,
                    "certification_name": row.certification_name,
                    "assignment_id": row.assignment_id,
                    "status": row.status,
                    "expires_on": row.expires_on,
                    "exempt": bool(row.exempt),
                    "satisfied_via": None
                    if row.satisfied_via_id is None
                    else {
                        "certification_id": row.via_certification_id,
                        "certification_name": row.via_certification_name,
                        "assignment_id": row.satisfied_via_id,
                    },
                }
            )
    out = []
    for m in members:
        certs = sorted(by_member[m.id], key=lambda e: (e["certification_name"].lower(),))
        summary = empty_counts() | {"exempt": 0}
        for entry in certs:
            summary["exempt" if entry["exempt"] else entry["status"]] += 1
        out.append(
            {
                "employee_id": m.id,
                "name": m.name,
                "external_id": m.external_id,
                "certifications": certs,
                "summary": summary,
            }
        )
    return out


def csv_lines(
    session: Session,
    target: Target,
    target_id: uuid.UUID,
    on: date,
    statuses: Sequence[str],
    when: AsOf | None = None,
) -> Iterator[list[Any]]:
    """One line per member per required certification (a member with none: one blank line),
    in pages of 500 members."""
    stmt = members_statement(target, target_id, on, statuses, when).order_by(E.name, E.id)
    after: tuple[str, uuid.UUID] | None = None
    while True:
        page_stmt = stmt
        if after is not None:
            page_stmt = page_stmt.where(
                (E.name > after[0]) | and_(E.name == after[0], E.id > after[1])
            )
        members = list(session.scalars(page_stmt.limit(500)))
        if not members:
            return
        for row in member_rows(session, target, target_id, members, on, statuses, when):
            base = [row["employee_id"], row["name"], row["external_id"] or ""]
            if not row["certifications"]:
                yield [*base, "", "", "", "", ""]
            for e in row["certifications"]:
                yield [
                    *base,
                    e["certification_id"],
                    e["certification_name"],
                    e["status"],
                    e["expires_on"] or "",
                    "true" if e["exempt"] else "false",
                ]
        after = (members[-1].name, members[-1].id)


CSV_COLUMNS = [
    "employee_id",
    "employee_name",
    "employee_external_id",
    "certification_id",
    "certification_name",
    "status",
    "expires_on",
    "exempt",
]


def workforce(
    session: Session,
    target: Target,
    owner_ids: Sequence[uuid.UUID],
    on: date,
    when: AsOf | None = None,
) -> dict[uuid.UUID, dict[str, Any]]:
    """owner → {"members": n, "summary": count per status of the entries} for a view page."""
    ids = list(owner_ids)
    out: dict[uuid.UUID, dict[str, Any]] = {
        i: {"members": 0, "summary": empty_counts() | {"exempt": 0}} for i in ids
    }
    if not ids:
        return out
    owner = target.of(M)
    counts = session.execute(
        select(owner, func.count(func.distinct(M.employee_id)))
        .join(E, and_(E.org_id == M.org_id, E.id == M.employee_id))
        .where(owner.in_(ids), on_date(M, on), E.active.is_(True))
        .group_by(owner)
    )
    for owner_id, n in counts:
        out[owner_id]["members"] = n
    entries = _entries(target, ids, on, when).subquery("entries")
    exempt = entries.c.exempt
    rows = session.execute(
        select(entries.c.owner_id, entries.c.status, exempt, func.count()).group_by(
            entries.c.owner_id, entries.c.status, exempt
        )
    )
    for owner_id, status, is_exempt, n in rows:
        out[owner_id]["summary"]["exempt" if is_exempt else status] += n
    return out
