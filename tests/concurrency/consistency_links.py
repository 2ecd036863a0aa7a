"""Invariants between a certification's links, the directory and its role assignments.

Each helper reads the organization's rows in its own session (RLS applies), after the jobs have
drained, and compares them in Python: a handful of plain scans, whatever plan the freshly
filled tables would get for an anti-join.

- `stale_role_requirements`: live, required, role-sourced assignments whose employee is inactive
  or holds none of the certification's roles (the fan-out should have retired them);
- `missing_role_requirements`: active members of a live employee certification's roles with no
  live assignment of it (nor a revoked one, which the fan-out deliberately leaves in place);
- `role_holders`, `active_members`, `links`: what a test compares, per certification and role;
- `failed_jobs`: jobs of the organization that ended `failed`.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import select

from certifications.assignments.models import Assignment
from certifications.catalog.models import Certification, CertificationGroupMember, CertificationRole
from certifications.directory.models import Employee
from infra import context
from infra import database as db
from jobs.models import Job

A = Assignment
E = Employee
CR = CertificationRole
CG = CertificationGroupMember
C = Certification


@dataclass
class _Snapshot:
    employees: dict[uuid.UUID, tuple[uuid.UUID | None, bool]]  # id -> (role_id, active)
    roles: dict[uuid.UUID, set[uuid.UUID]]  # certification -> role ids
    groups: dict[uuid.UUID, set[uuid.UUID]]  # certification -> group ids
    fans_out: set[uuid.UUID]  # live employee certifications
    # (certification, subject, source, required, revoked, status) of every assignment
    assignments: list[tuple[uuid.UUID, uuid.UUID, str, bool, bool, str]]


def _snapshot(org_id: uuid.UUID) -> _Snapshot:
    with context.tenant(org_id), db.new_session() as s:
        employees = {
            row.id: (row.role_id, row.active)
            for row in s.execute(select(E.id, E.role_id, E.active))
        }
        roles: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
        groups: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
        fans_out = set()
        for cert_id, kind, archived_at in s.execute(select(C.id, C.type, C.archived_at)):
            roles[cert_id], groups[cert_id] = set(), set()
            if kind == "employee" and archived_at is None:
                fans_out.add(cert_id)
        for cert_id, role_id in s.execute(select(CR.certification_id, CR.role_id)):
            roles[cert_id].add(role_id)
        for cert_id, group_id in s.execute(select(CG.certification_id, CG.group_id)):
            groups[cert_id].add(group_id)
        assignments = [
            (
                row.certification_id,
                row.subject_id,
                row.source,
                row.required,
                row.revoked,
                row.status,
            )
            for row in s.execute(
                select(
                    A.certification_id,
                    A.subject_id,
                    A.source,
                    A.required,
                    A.revoked_at.is_not(None).label("revoked"),
                    A.status,
                ).where(A.subject_type == "employee")
            )
        ]
    return _Snapshot(employees, roles, groups, fans_out, assignments)


def _applies(snap: _Snapshot, cert_id: uuid.UUID, employee_id: uuid.UUID) -> bool:
    role_id, active = snap.employees.get(employee_id, (None, False))
    return active and role_id in snap.roles.get(cert_id, set())


def stale_role_requirements(org_id: uuid.UUID) -> list[tuple[uuid.UUID, uuid.UUID, str]]:
    """(certification_id, employee_id, status) of required role assignments nobody should hold:
    the employee is inactive or in none of the certification's roles."""
    snap = _snapshot(org_id)
    return sorted(
        (cert_id, subject_id, status)
        for cert_id, subject_id, source, required, revoked, status in snap.assignments
        if source == "role" and required and not revoked and not _applies(snap, cert_id, subject_id)
    )


def missing_role_requirements(org_id: uuid.UUID) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(certification_id, employee_id) of active role members without the certification."""
    snap = _snapshot(org_id)
    held = {(cert_id, subject_id) for cert_id, subject_id, *_ in snap.assignments}
    return sorted(
        (cert_id, employee_id)
        for cert_id in snap.fans_out
        for employee_id in snap.employees
        if _applies(snap, cert_id, employee_id) and (cert_id, employee_id) not in held
    )


def role_holders(org_id: uuid.UUID) -> dict[uuid.UUID, set[uuid.UUID]]:
    """Per certification, the employees holding a live, required role assignment of it."""
    out: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
    for cert_id, subject_id, source, required, revoked, _status in _snapshot(org_id).assignments:
        if source == "role" and required and not revoked:
            out[cert_id].add(subject_id)
    return out


def active_members(org_id: uuid.UUID) -> dict[uuid.UUID, set[uuid.UUID]]:
    """Per role, its active employees."""
    out: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
    for employee_id, (role_id, active) in _snapshot(org_id).employees.items():
        if active and role_id is not None:
            out[role_id].add(employee_id)
    return out


def links(org_id: uuid.UUID) -> dict[uuid.UUID, dict[str, frozenset[uuid.UUID]]]:
    """Per certification: {"role_ids": …, "group_ids": …} as sets."""
    snap = _snapshot(org_id)
    return {
        cert_id: {
            "role_ids": frozenset(snap.roles[cert_id]),
            "group_ids": frozenset(snap.groups[cert_id]),
        }
        for cert_id in snap.roles
    }


def failed_jobs(org_id: uuid.UUID) -> list[tuple[str, str | None]]:
    """(kind, error) of the organization's jobs that ended `failed`."""
    stmt = select(Job.kind, Job.error).where(Job.state == "failed")
    with context.tenant(org_id), db.new_session() as s:
        return [(kind, error) for kind, error in s.execute(stmt)]
