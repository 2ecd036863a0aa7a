"""Renewal tasks (SPEC §4 `task_rules`, §5): one per (assignment, rule, cycle), set-based.

A task rule `{days_before_expiry: N, assignee: "holder" | employee id}` opens a task N days
before the assignment expires, due on the expiry date. Renewing (the assignment's `cycle`
grows) or revoking the assignment closes its open tasks of older cycles.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, String, Uuid, case, exists, literal, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from certifications.assignments.models import Assignment
from certifications.automation.models import Task
from certifications.catalog.models import Certification
from certifications.directory.models import Employee
from certifications.vocabulary import MAX_DAYS
from infra.database import get_or_not_found, utcnow
from infra.dialect import batches, insert_ignoring_conflicts, literal_table, new_uuid_sql
from infra.errors import Conflict

_TARGET_COLUMNS: list[tuple[str, TypeEngine[Any]]] = [
    ("certification_id", Uuid()),
    ("rule_key", String(64)),
    ("until_on", Date()),
    ("assignee_id", Uuid()),
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
    assignee_id: uuid.UUID | None  # None: the holder when it is an employee, else unassigned
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
    session: Session, certs: list[Certification], today: date
) -> list[TaskTarget]:
    named: dict[str, uuid.UUID] = {}
    parsed: list[tuple[Certification, dict[str, Any], int, str]] = []
    for cert in certs:
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
        key = task_rule_key(rule)
        out.setdefault(
            (cert.id, key),
            TaskTarget(
                cert.id, key, today + timedelta(days=days), assignee_id, f"Renew {cert.name}"
            ),
        )
    return list(out.values())


def _insert(session: Session, org_id: uuid.UUID, targets: list[TaskTarget], now: datetime) -> int:
    a = Assignment
    rows = [(t.certification_id, t.rule_key, t.until_on, t.assignee_id, t.title) for t in targets]
    t = literal_table(session, "task_targets", _TARGET_COLUMNS, rows)
    assignee = case(
        (t.c.assignee_id.is_not(None), t.c.assignee_id),
        (a.subject_type == "employee", a.subject_id),
        else_=None,
    )
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
            t.c.title,
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
        )
    )
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
    certs = session.scalars(select(Certification).where(Certification.archived_at.is_(None)))
    targets = expand_task_targets(session, [c for c in certs if c.task_rules], today)
    created = sum(_insert(session, org_id, list(chunk), now) for chunk in batches(targets))
    closed = close_superseded_tasks(session, org_id, now)
    session.flush()
    return {"created": created, "closed": closed}


def get_task(session: Session, task_id: uuid.UUID) -> Task:
    return get_or_not_found(session, Task, task_id, "task")


def set_task_status(
    session: Session,
    task_id: uuid.UUID,
    status: str,
    actor: str | None,
    now: datetime | None = None,
) -> Task:
    """Complete (`done`) or reopen (`open`) a task; closed tasks belong to an old cycle."""
    task = get_task(session, task_id)
    if task.status == "closed":
        raise Conflict("This task was closed by a renewal and can no longer change.")
    if status == "done" and task.status != "done":
        task.completed_at = now or utcnow()
        task.completed_by = actor
    elif status == "open":
        task.completed_at = None
        task.completed_by = None
    task.status = status
    session.flush()
    return task
