"""Renewal tasks (SPEC §4 `task_rules`, §5): one per (assignment, rule, cycle), set-based.

A task rule `{days_before_expiry: N, assignee: "holder" | employee id}` opens a task N days
before the assignment expires, due on the expiry date, titled with the certification and the
subject ("Renew Excavation Permit — Site North"). `holder` means the employee who holds it; an
asset's, client's or location's task goes to the certification's `task_assignee_id`, else the
organization's `default_task_assignee_id`. Renewing (the assignment's `cycle` grows) or revoking
the assignment closes its open tasks of older cycles. People reassign, reschedule, annotate,
complete, reopen or cancel a task (`update_task`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, String, Uuid, case, exists, func, literal, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from certifications.assignments.models import Assignment
from certifications.assignments.scope import in_compliance
from certifications.automation.models import Task
from certifications.catalog.models import Certification
from certifications.directory.models import Employee
from certifications.reporting.names import outerjoin_all, subject_name_joins
from certifications.vocabulary import MAX_DAYS
from infra.database import get_or_not_found, utcnow
from infra.dialect import batches, insert_ignoring_conflicts, literal_table, new_uuid_sql
from infra.errors import Conflict, Invalid
from tenancy.models import Organization

_TARGET_COLUMNS: list[tuple[str, TypeEngine[Any]]] = [
    ("certification_id", Uuid()),
    ("rule_key", String(64)),
    ("until_on", Date()),
    ("assignee_id", Uuid()),
    ("fallback_id", Uuid()),
    ("title", String(500)),
]
_INSERT_COLUMNS = [
    "id",
    "org_id",
    "assignment_id",
    "certification_id",
    "rule_key",
    "cycle",
    "kind",
    "title",
    "assignee_id",
    "due_on",
    "status",
    "created_at",
    "updated_at",
]
_KEY = ["org_id", "assignment_id", "rule_key", "cycle"]


@dataclass(frozen=True)
class TaskTarget:
    certification_id: uuid.UUID
    rule_key: str
    until_on: date
    assignee_id: uuid.UUID | None  # None: the holder when it is an employee, else fallback_id
    fallback_id: uuid.UUID | None  # who gets the tasks of non-employee subjects
    title: str


def task_rule_key(rule: dict[str, Any]) -> str:
    return f"renewal:{int(rule['days_before_expiry'])}:{rule.get('assignee') or 'holder'}"


def _parse(rule: Any) -> tuple[int, str] | None:
    if not isinstance(rule, dict):
        return None
    days = rule.get("days_before_expiry")
    if not isinstance(days, int) or isinstance(days, bool) or not 0 <= days <= MAX_DAYS:
        return None
    return days, str(rule.get("assignee") or "holder")


def expand_task_targets(
    session: Session,
    certs: list[Certification],
    today: date,
    default_assignee_id: uuid.UUID | None = None,
) -> list[TaskTarget]:
    named: dict[str, uuid.UUID] = {}
    parsed: list[tuple[Certification, dict[str, Any], int, str]] = []
    if default_assignee_id is not None:
        named["default"] = default_assignee_id
    for cert in certs:
        if cert.task_assignee_id is not None:
            named[str(cert.task_assignee_id)] = cert.task_assignee_id
        for rule in cert.task_rules or []:
            got = _parse(rule)
            if got is None:
                continue
            parsed.append((cert, rule, *got))
            if got[1] != "holder":
                try:
                    named[got[1]] = uuid.UUID(got[1])
                except ValueError:
                    continue
    # A named assignee that is not (or no longer) an employee of this org: the task stays
    # unassigned rather than failing the whole batch on the foreign key.
    known = set(session.scalars(select(Employee.id).where(Employee.id.in_(list(named.values())))))
    out: dict[tuple[Any, ...], TaskTarget] = {}
    for cert, rule, days, assignee in parsed:
        assignee_id = named.get(assignee) if assignee != "holder" else None
        if assignee_id is not None and assignee_id not in known:
            assignee_id = None
        fallback = cert.task_assignee_id or default_assignee_id
        if fallback not in known:
            fallback = None
        key = task_rule_key(rule)
        out.setdefault(
            (cert.id, key),
            TaskTarget(
                cert.id,
                key,
                today + timedelta(days=days),
                assignee_id,
                fallback,
                f"Renew {cert.name}",
            ),
        )
    return list(out.values())


def _insert(session: Session, org_id: uuid.UUID, targets: list[TaskTarget], now: datetime) -> int:
    a = Assignment
    rows = [
        (t.certification_id, t.rule_key, t.until_on, t.assignee_id, t.fallback_id, t.title)
        for t in targets
    ]
    t = literal_table(session, "task_targets", _TARGET_COLUMNS, rows)
    assignee = case(
        (t.c.assignee_id.is_not(None), t.c.assignee_id),
        (a.subject_type == "employee", a.subject_id),
        else_=t.c.fallback_id,
    )
    subjects, subject_name = subject_name_joins(a)
    title = func.substr(t.c.title + literal(" — ") + func.coalesce(subject_name, "?"), 1, 500)
    stamp = Task.__table__.c.created_at.type
    stmt = (
        select(
            new_uuid_sql(session.get_bind().dialect.name),
            literal(org_id, Uuid()),
            a.id,
            a.certification_id,
            t.c.rule_key,
            a.cycle,
            literal("renewal"),
            title,
            assignee,
            a.expires_on,
            literal("open"),
            literal(now, stamp),
            literal(now, stamp),
        )
        .select_from(a)
        .join(t, t.c.certification_id == a.certification_id)
        .where(
            a.expires_on.is_not(None),
            a.expires_on <= t.c.until_on,
            a.revoked_at.is_(None),
            a.status != "revoked",
            a.required.is_(True),
            in_compliance(a),
            a.satisfied_via_id.is_(None),  # covered by an equivalent certification's record
        )
    )
    stmt = outerjoin_all(stmt, subjects)
    return insert_ignoring_conflicts(session, Task.__table__, _INSERT_COLUMNS, stmt, _KEY)


def close_superseded_tasks(session: Session, org_id: uuid.UUID, now: datetime) -> int:
    """Open tasks of an older cycle (renewed) or of a revoked assignment are closed."""
    tk, a = Task, Assignment
    superseded = exists().where(
        a.org_id == tk.org_id,
        a.id == tk.assignment_id,
        or_(a.cycle > tk.cycle, a.revoked_at.is_not(None)),
    )
    result = session.execute(
        update(tk)
        .where(tk.status == "open", superseded)
        .values(status="closed", closed_at=now, updated_at=now),
        execution_options={"synchronize_session": False},
    )
    return max(result.rowcount or 0, 0)  # type: ignore[attr-defined]


def evaluate_task_rules(
    session: Session, org_id: uuid.UUID, today: date, now: datetime | None = None
) -> dict[str, int]:
    """Open the renewal tasks due by `today`, close superseded ones (idempotent; flushes only)."""
    now = now or utcnow()
    org = session.get(Organization, org_id)
    default = org.default_task_assignee_id if org is not None else None
    certs = session.scalars(select(Certification).where(Certification.archived_at.is_(None)))
    targets = expand_task_targets(session, [c for c in certs if c.task_rules], today, default)
    created = sum(_insert(session, org_id, list(chunk), now) for chunk in batches(targets))
    closed = close_superseded_tasks(session, org_id, now)
    session.flush()
    return {"created": created, "closed": closed}


def get_task(session: Session, task_id: uuid.UUID) -> Task:
    return get_or_not_found(session, Task, task_id, "task")


def check_assignee(session: Session, employee_id: uuid.UUID | None, field: str) -> None:
    """422 naming `field` unless `employee_id` is None or an employee of this organization
    (another organization's employee is as unknown here as a made-up id)."""
    if employee_id is not None and session.get(Employee, employee_id) is None:
        raise Invalid({field: ["No employee with this id."]})


def update_task(
    session: Session,
    task_id: uuid.UUID,
    changes: dict[str, Any],
    actor: str | None,
    now: datetime | None = None,
) -> Task:
    """Reassign, reschedule, annotate, complete (`done`), reopen (`open`) or cancel a task.

    A task a renewal or revocation closed belongs to an old cycle: 409. `assignee_id` must be
    an employee of this organization (another org's id is as unknown as a made-up one: 422).
    """
    # The row lock first: a renewal closing the task meanwhile is seen, not overwritten (a
    # task gone meanwhile is the same 404 as an unknown one).
    task = session.get(Task, task_id, with_for_update=True) or get_task(session, task_id)
    if task.status == "closed":
        raise Conflict("This task was closed by a renewal and can no longer change.")
    now = now or utcnow()
    check_assignee(session, changes.get("assignee_id"), "assignee_id")
    for field in ("assignee_id", "due_on", "note"):
        if field in changes:
            setattr(task, field, changes[field])
    status = changes.get("status")
    if status is not None and status != task.status:
        task.completed_at = now if status == "done" else None
        task.completed_by = actor if status == "done" else None
        task.closed_at = now if status == "cancelled" else None
        task.status = status
    task.updated_at = now
    session.flush()
    return task
