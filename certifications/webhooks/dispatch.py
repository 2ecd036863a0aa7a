"""Turn the outbox's batches into events and deliveries, in batch order, set-based.

A round takes the org's oldest batches (locked: a second round waits, so events get their
`seq` in batch order), writes their events — a `status` batch's from its status events in one
INSERT … SELECT, an `inline` batch's as they are — then one delivery per (event, subscribed
endpoint) in one INSERT … SELECT, and deletes the batches, in one transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
)
from sqlalchemy.orm import Session

from certifications.assignments.models import StatusEvent
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
ID_CHUNK = 500  # status event ids per statement (well under SQLite's bind limit)

B = WebhookBatch
V = WebhookEvent
S = StatusEvent
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
    inline: list[dict[str, Any]] = []  # consecutive inline batches, written together
    items = 0
    for batch in batches:
        if done and items + len(batch.items) > max_items:
            break
        if batch.kind == "status":
            _inline_events(session, dialect, inline)
            inline = []
            _status_events(session, dialect, [_uuid(i) for i in batch.items])
        else:
            inline += batch.items
        items += len(batch.items)
        done.append(batch.id)
    _inline_events(session, dialect, inline)
    _deliveries(session, dialect, start)
    session.execute(
        delete(B).where(B.id.in_(done)), execution_options={"synchronize_session": False}
    )
    return len(done)


def has_batches(session: Session) -> bool:
    return session.scalar(select(B.id).limit(1)) is not None


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _next_seq(session: Session) -> int:
    """SQLite only (no identity column): one writer at a time, so max + 1 is safe."""
    top = select(func.max(V.seq)).execution_options(all_tenants=True)
    return int(session.scalar(top) or 0) + 1


def _json_object(dialect: str, *pairs: tuple[str, Any]) -> Any:
    fn = func.json_build_object if dialect == "postgresql" else func.json_object
    args: list[Any] = []
    for key, value in pairs:
        args += [literal(key), value]
    return fn(*args, type_=V.__table__.c.payload.type)


def _chunks(ids: list[uuid.UUID]) -> Iterable[list[uuid.UUID]]:
    for i in range(0, len(ids), ID_CHUNK):
        yield ids[i : i + ID_CHUNK]


def _status_events(session: Session, dialect: str, ids: list[uuid.UUID]) -> int:
    made = 0
    order = (S.created_at, S.id)
    for chunk in _chunks(ids):
        columns: list[Any] = [
            S.org_id,
            S.id,
            case(
                (S.to_status == "revoked", "assignment.revoked"), else_="assignment.status_changed"
            ),
            S.assignment_id,
            _json_object(
                dialect,
                ("assignment_id", S.assignment_id),
                ("cycle", S.cycle),
                ("from_status", S.from_status),
                ("to_status", S.to_status),
                ("on_date", S.on_date),
            ),
            S.created_at,
        ]
        names = ["org_id", "id", "type", "assignment_id", "payload", "occurred_at"]
        if dialect != "postgresql":
            base = _next_seq(session) - 1
            columns.append(literal(base) + func.row_number().over(order_by=order))
            names.append("seq")
        source = select(*columns).where(S.id.in_(chunk)).order_by(*order)
        result = session.execute(insert(V).from_select(names, source))
        made += result.rowcount  # type: ignore[attr-defined]
    return made


def _inline_events(session: Session, dialect: str, items: list[dict[str, Any]]) -> int:
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
