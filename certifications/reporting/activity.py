"""List queries for the automation endpoints: filters → (statement, keyset columns)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, select

from certifications.audit.models import AuditEvent
from certifications.automation.models import Notification, Task
from infra.errors import Invalid


def _utc(value: datetime, field: str) -> datetime:
    """Stored timestamps are UTC (and naive strings on SQLite): compare in UTC."""
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise Invalid({field: ["Out of range."]}) from exc


def notifications_query(args: dict[str, Any]) -> tuple[Select[Any], list[Any]]:
    stmt = select(Notification)
    for name in ("status", "channel", "assignment_id"):
        if args.get(name) is not None:
            stmt = stmt.where(getattr(Notification, name) == args[name])
    return stmt, [Notification.created_at, Notification.id]


def tasks_query(args: dict[str, Any]) -> tuple[Select[Any], list[Any]]:
    stmt = select(Task)
    for name in ("status", "assignee_id", "assignment_id"):
        if args.get(name) is not None:
            stmt = stmt.where(getattr(Task, name) == args[name])
    if args.get("due_before") is not None:
        stmt = stmt.where(Task.due_on <= args["due_before"])
    return stmt, [Task.due_on, Task.id]


def audit_query(args: dict[str, Any]) -> tuple[Select[Any], list[Any]]:
    stmt = select(AuditEvent)
    for name in ("entity_type", "entity_id", "actor"):
        if args.get(name) is not None:
            stmt = stmt.where(getattr(AuditEvent, name) == args[name])
    if args.get("since") is not None:
        stmt = stmt.where(AuditEvent.created_at >= _utc(args["since"], "since"))
    if args.get("until") is not None:
        stmt = stmt.where(AuditEvent.created_at < _utc(args["until"], "until"))
    return stmt, [AuditEvent.created_at, AuditEvent.id]
