"""Rosters: employees on a job site's roster or a client's workforce, between two dates.

Every change asks for one requirement fan-out of the employees it touches (a site or client
can require certifications of its members, `assignments.requirements`); the org's tick starts
and ends the memberships whose dates come (`assignments.fanout.membership_boundaries`).
Bulk loads (JSON or CSV, up to `MAX_ROWS`) upsert by (employee, `starts_on`) in a few
statements whatever their size and report every row, like the directory's bulk upsert.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Select, insert, select, update
from sqlalchemy.orm import Session

from certifications.assignments.requirements import on_date
from certifications.audit import trail as audit
from certifications.directory.bulk import (
    MAX_ROWS,
    RowErrors,
    _among,
    _atomic_error,
    _chunks,
    _error_row,
    _report,
)
from certifications.directory.models import Client, Employee, Location, Membership
from certifications.directory.service import request_fanout
from infra.context import require_org_id
from infra.database import get_or_not_found, utcnow
from infra.errors import Invalid, NotFound
from jobs.models import Job

M = Membership

__all__ = ["MAX_ROWS", "TARGETS", "Target"]


@dataclass(frozen=True)
class Target:
    """What a roster belongs to: a location or a client."""

    plural: str
    entity: str
    model: type[Location] | type[Client]
    column: str  # the membership's column naming it

    def of(self, m: Any) -> Any:
        return getattr(m, self.column)


TARGETS = {
    "locations": Target("locations", "location", Location, "location_id"),
    "clients": Target("clients", "client", Client, "client_id"),
}


def get_target(session: Session, target: Target, target_id: uuid.UUID) -> Any:
    return get_or_not_found(session, target.model, target_id, target.entity)


def list_statement(target: Target, target_id: uuid.UUID, on: date | None) -> Select[Any]:
    """The roster (on a date, when given); the caller pages it by (created_at, id)."""
    stmt = select(M).where(target.of(M) == target_id)
    if on is not None:
        stmt = stmt.where(on_date(M, on))
    return stmt


def get(
    session: Session, target: Target, target_id: uuid.UUID, membership_id: uuid.UUID
) -> Membership:
    get_target(session, target, target_id)
    m = session.get(M, membership_id)
    if m is None or target.of(m) != target_id:
        raise NotFound("membership", membership_id)
    return m


def create(
    session: Session, target: Target, target_id: uuid.UUID, data: dict[str, Any]
) -> Membership:
    get_target(session, target, target_id)
    if session.scalar(select(Employee.id).where(Employee.id == data["employee_id"])) is None:
        raise Invalid({"employee_id": ["Unknown employee."]})
    _check_dates(data.get("starts_on"), data.get("ends_on"))
    m = M(
        employee_id=data["employee_id"],
        starts_on=data.get("starts_on"),
        ends_on=data.get("ends_on"),
        **{target.column: target_id},
    )
    session.add(m)
    session.flush()
    _fanout(session, m, [m.employee_id])
    return m


def update_membership(
    session: Session,
    target: Target,
    target_id: uuid.UUID,
    membership_id: uuid.UUID,
    changes: dict[str, Any],
) -> Membership:
    m = get(session, target, target_id, membership_id)
    starts = changes.get("starts_on", m.starts_on)
    ends = changes.get("ends_on", m.ends_on)
    _check_dates(starts, ends)
    before = (m.starts_on, m.ends_on)
    m.starts_on, m.ends_on = starts, ends
    session.flush()
    if before != (starts, ends):
        _fanout(session, m, [m.employee_id])
    return m


def delete_membership(
    session: Session, target: Target, target_id: uuid.UUID, membership_id: uuid.UUID
) -> Job | None:
    """Take the employee off the roster; the assignments' history stays."""
    m = get(session, target, target_id, membership_id)
    employee_id = m.employee_id
    session.delete(m)
    session.flush()
    return request_fanout(session, [employee_id])


def _fanout(session: Session, m: Membership, employees: list[uuid.UUID]) -> None:
    job = request_fanout(session, employees)
    m.job_id = job.id if job else None  # type: ignore[attr-defined]  # shown in the response


def _check_dates(starts: date | None, ends: date | None) -> None:
    if starts is not None and ends is not None and ends < starts:
        raise Invalid({"ends_on": ["Must not be before starts_on."]})


def employee_names(session: Session, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = session.execute(select(Employee.id, Employee.name).where(Employee.id.in_(wanted)))
    return {row[0]: row[1] for row in rows}


# --- bulk ------------------------------------------------------------------------------------


def bulk_memberships(
    session: Session,
    target: Target,
    target_id: uuid.UUID,
    rows: list[tuple[int, dict[str, Any]]],
    row_errors: dict[int, RowErrors],
    *,
    atomic: bool = False,
    lines: dict[int, int] | None = None,
) -> dict[str, Any]:
    """Upsert roster rows by (employee, `starts_on`): same dates → unchanged, another `ends_on`
    → updated, else created. One fan-out job for every employee whose membership changed."""
    get_target(session, target, target_id)
    errors = dict(row_errors)
    employees = _employees(session, rows)
    keyed: list[tuple[int, dict[str, Any], uuid.UUID]] = []
    first: dict[tuple[uuid.UUID, date | None], int] = {}
    for index, data in rows:
        ref = "employee_id" if data.get("employee_id") else "employee_external_id"
        employee = employees.get((ref, data[ref]))
        if employee is None:
            errors[index] = {ref: ["Unknown employee."]}
            continue
        seen = first.setdefault((employee, data.get("starts_on")), index)
        if seen != index:
            errors[index] = {ref: [f"Same employee and starts_on as row {seen} in this request."]}
            continue
        keyed.append((index, data, employee))

    existing = _existing(session, target, target_id, sorted({e for _, _, e in keyed}))
    results: dict[int, dict[str, Any]] = {}
    creates: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    touched: set[uuid.UUID] = set()
    org_id = require_org_id()
    now = utcnow()
    for index, data, employee in keyed:
        starts, ends = data.get("starts_on"), data.get("ends_on")
        old = existing.get((employee, starts))
        if old is None:
            mid, status = uuid.uuid4(), "created"
            creates.append(
                {
                    "org_id": org_id,
                    "id": mid,
                    "employee_id": employee,
                    target.column: target_id,
                    "starts_on": starts,
                    "ends_on": ends,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        else:
            mid, old_ends = old
            status = "unchanged" if old_ends == ends else "updated"
            if status == "updated":
                updates.append({"org_id": org_id, "id": mid, "ends_on": ends, "updated_at": now})
        if status != "unchanged":
            touched.add(employee)
        results[index] = {"index": index, "employee_id": employee, "status": status, "id": mid}
    for index, errs in errors.items():
        results[index] = _error_row(index, errs)
    if atomic and errors:
        raise _atomic_error(_report(results, lines, job_id=None), errors)
    if creates:
        session.execute(insert(M), creates)
    if updates:
        session.execute(update(M), updates)  # ORM bulk UPDATE by primary key
    job = request_fanout(session, sorted(touched))
    if creates or updates:
        audit.record(
            session,
            "bulk_upsert",
            "membership",
            after={
                target.column: str(target_id),
                "created": [str(c["id"]) for c in creates],
                "updated": [str(u["id"]) for u in updates],
            },
        )
    return _report(results, lines, job_id=job.id if job else None)


def _employees(
    session: Session, rows: list[tuple[int, dict[str, Any]]]
) -> dict[tuple[str, Any], uuid.UUID]:
    """(field, value) → employee id for the employees the rows name (two lookups at most)."""
    found: dict[tuple[str, Any], uuid.UUID] = {}
    ids = sorted({d["employee_id"] for _, d in rows if d.get("employee_id")})
    externals = sorted(
        {d["employee_external_id"] for _, d in rows if d.get("employee_external_id")}
    )
    for chunk in _chunks(ids):
        stmt = _among(session, select(Employee.id), Employee.id, chunk)
        found.update({("employee_id", e): e for e in session.scalars(stmt)})
    for chunk in _chunks(externals):
        stmt = _among(
            session, select(Employee.external_id, Employee.id), Employee.external_id, chunk
        )
        found.update({("employee_external_id", x): e for x, e in session.execute(stmt)})
    return found


def _existing(
    session: Session, target: Target, target_id: uuid.UUID, employees: list[uuid.UUID]
) -> dict[tuple[uuid.UUID, date | None], tuple[uuid.UUID, date | None]]:
    found = {}
    for chunk in _chunks(employees):
        stmt = select(M.employee_id, M.starts_on, M.id, M.ends_on).where(
            target.of(M) == target_id, M.employee_id.in_(chunk)
        )
        for employee, starts, mid, ends in session.execute(stmt):
            found[(employee, starts)] = (mid, ends)
    return found
