"""List queries of the record endpoints (assignments, notifications, tasks, audit events).

Each turns the endpoint's validated filters into (statement, keyset columns) for
`api.pagination.paginate`; the session adds the tenant filter.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, select

from certifications.assignments.models import Assignment
from certifications.audit.models import AuditEvent
from certifications.automation.models import Notification, Task
from infra.errors import Invalid
from tenancy.keys import tenant_join


def _equal(model: Any, args: dict[str, Any], names: Iterable[str]) -> Select[Any]:
    """`model` rows whose columns `names` equal the given filters (absent or None: any), changed
    since `updated_since` when given."""
    stmt = select(model)
    if args.get("updated_since") is not None:
        stmt = stmt.where(model.updated_at >= _utc(args["updated_since"], "updated_since"))
    for name in names:
        value = args.get(name)
        if isinstance(value, list):  # a multi-value filter: any of them
            stmt = stmt.where(getattr(model, name).in_(value))
        elif value is not None:
            stmt = stmt.where(getattr(model, name) == value)
    return stmt


def _utc(value: datetime, field: str) -> datetime:
    """Stored timestamps are UTC (and naive strings on SQLite): compare in UTC."""
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise Invalid({field: ["Out of range."]}) from exc


def assignments_query(args: dict[str, Any]) -> tuple[Select[Any], list[Any]]:
    names = ("certification_id", "subject_type", "subject_id", "status", "source", "required")
    return _equal(Assignment, args, names), [Assignment.created_at, Assignment.id]


def notifications_query(args: dict[str, Any]) -> tuple[Select[Any], list[Any]]:
    stmt = _equal(Notification, args, ("status", "channel", "assignment_id"))
    return stmt, [Notification.created_at, Notification.id]


def tasks_query(args: dict[str, Any]) -> tuple[Select[Any], list[Any]]:
    stmt = _equal(Task, args, ("status", "assignee_id", "assignment_id", "certification_id"))
    if args.get("subject_type") is not None or args.get("subject_id") is not None:
        stmt = stmt.join(Assignment, tenant_join(Assignment, Task, "assignment_id"))
        for name in ("subject_type", "subject_id"):
            if args.get(name) is not None:
                stmt = stmt.where(getattr(Assignment, name) == args[name])
    if args.get("due_before") is not None:
        stmt = stmt.where(Task.due_on <= args["due_before"])
    return stmt, [Task.due_on, Task.id]


def audit_query(args: dict[str, Any]) -> tuple[Select[Any], list[Any]]:
    stmt = _equal(AuditEvent, args, ("entity_type", "entity_id", "actor"))
    if args.get("since") is not None:
        stmt = stmt.where(AuditEvent.created_at >= _utc(args["since"], "since"))
    if args.get("until") is not None:
        stmt = stmt.where(AuditEvent.created_at < _utc(args["until"], "until"))
    return stmt, [AuditEvent.created_at, AuditEvent.id]
