"""Turn the outbox's batches into events and deliveries, in batch order, set-based.

A round takes the org's oldest batches (locked: a second round waits, so events get their
`seq` in batch order), writes their events (a `status` batch's compact rows expanded, an
`inline` batch's as they are), then one delivery per (event, subscribed endpoint) in one
INSERT … SELECT, and deletes the batches, in one transaction.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
)
from sqlalchemy.orm import Session

from certifications.webhooks.models import (
    ALL_EVENTS,
    WebhookBatch,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from infra.context import require_org_id
from infra.database import utcnow
from infra.dialect import new_uuid_sql

# Per round: many small batches (row triggers on SQLite, executemany writers) or a few large
# ones (a recompute chunk's status changes), about MAX_ITEMS events in one transaction.
MAX_BATCHES = 1000
MAX_ITEMS = 20_000

B = WebhookBatch
V = WebhookEvent
W = WebhookEndpoint


def dispatch(session: Session, max_batches: int = MAX_BATCHES, max_items: int = MAX_ITEMS) -> int:
    """Events and deliveries from the org's oldest batches (at least one, then up to about
    `max_items` events); returns how many batches were done."""
    batches = session.scalars(select(B).order_by(B.seq).limit(max_batches).with_for_update()).all()
    if not batches:
        return 0
    dialect = session.get_bind().dialect.name
    start = session.scalar(select(func.max(V.seq))) or 0  # this org's: its rounds wait here
    done: list[uuid.UUID] = []
    events: list[dict[str, Any]] = []
    for batch in batches:
        if done and len(events) + len(batch.items) > max_items:
            break
        if batch.kind == "status":
            events += [_status_event(item) for item in batch.items]
        else:
            events += batch.items
        done.append(batch.id)
    _insert_events(session, dialect, events)
    _deliveries(session, dialect, start)
    session.execute(
        delete(B).where(B.id.in_(done)), execution_options={"synchronize_session": False}
    )
    return len(done)


def _status_event(item: list[Any]) -> dict[str, Any]:
    """A status batch's compact row: [id, assignment_id, cycle, from, to, on_date, at]."""
    event_id, assignment_id, cycle, from_status, to_status, on_date, at = item
    kind = "assignment.revoked" if to_status == "revoked" else "assignment.status_changed"
    return {
        "id": event_id,
        "type": kind,
        "assignment_id": assignment_id,
        "occurred_at": at,
        "data": {
            "assignment_id": assignment_id,
            "cycle": cycle,
            "from_status": from_status,
            "to_status": to_status,
            "on_date": on_date,
        },
    }


def has_batches(session: Session) -> bool:
    return session.scalar(select(B.id).limit(1)) is not None


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _next_seq(session: Session) -> int:
    """SQLite only (no identity column): one writer at a time, so max + 1 is safe."""
    top = select(func.max(V.seq)).execution_options(all_tenants=True)
    return int(session.scalar(top) or 0) + 1


def _insert_events(session: Session, dialect: str, items: list[dict[str, Any]]) -> int:
    if not items:
        return 0
    base = _next_seq(session) if dialect != "postgresql" else None
    org_id = require_org_id()
    rows = []
    for i, item in enumerate(items):
        row = {
            "org_id": org_id,
            "id": _uuid(item["id"]),
            "type": item["type"],
            "assignment_id": _uuid(item["assignment_id"]) if item.get("assignment_id") else None,
            "payload": item.get("data") or {},
            "occurred_at": _when(item.get("occurred_at")),
        }
        if base is not None:
            row["seq"] = base + i
        rows.append(row)
    session.execute(insert(V), rows)
    return len(rows)


def _when(value: Any) -> datetime:
    """The trigger's timestamp text (ISO on PostgreSQL, SQLAlchemy's text on SQLite)."""
    if not value:
        return utcnow()
    return datetime.fromisoformat(str(value).replace(" ", "T"))


def _subscribed() -> ColumnElement[bool]:
    pattern = literal("|") + V.type + literal("|")
    return or_(W.event_filter == ALL_EVENTS, W.event_filter.contains(pattern))


def _deliveries(session: Session, dialect: str, after_seq: int) -> None:
    """One pending delivery per event written after `after_seq` and enabled, subscribed endpoint."""
    source = (
        select(
            V.org_id,
            new_uuid_sql(dialect),
            W.id,
            V.id,
            V.seq,
            literal("pending"),
            literal(0),
            V.occurred_at,
        )
        .select_from(V)
        .join(W, and_(W.org_id == V.org_id, W.disabled_at.is_(None), _subscribed()))
        .where(V.seq > after_seq)
    )
    session.execute(
        insert(WebhookDelivery).from_select(
            ["org_id", "id", "endpoint_id", "event_id", "seq", "status", "attempts", "created_at"],
            source,
        )
    )
