"""The audit trail: every ORM mutation made on behalf of an actor, in the same transaction.

An `after_flush` listener (installed on import; the app factory imports this module) turns the
flush's new, changed and deleted tenant rows into `audit_events` rows — who (the token's `sub`),
what (create/update/delete, entity type and id), before/after of the changed columns (secrets
redacted), when, and the request id — written on the flush's own connection, so they commit or
roll back with the change. It only acts while an actor is set (`infra.context.set_actor`, done
by `tenancy.auth.requires` for every API request); workers and migrations are not audited here.

Set-based statements (bulk upserts, fan-out) never pass through a flush: their services call
`record(session, action, entity_type, entity_id=None, after={...summary...})` instead.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import event, insert, inspect
from sqlalchemy.orm import Session, sessionmaker

from certifications.audit.models import AuditEvent
from infra.context import current_actor, current_org_id, current_request_id
from infra.database import utcnow
from tenancy.models import Organization, TenantScoped

# Tables that are themselves logs or plumbing: auditing them would only echo.
SKIPPED_TABLES = frozenset({"audit_events", "status_events", "outbox", "jobs"})
REDACTED = "[redacted]"
_SECRET = re.compile(r"secret|password|token", re.IGNORECASE)


def _jsonable(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _clean(key: str, value: Any) -> Any:
    if _SECRET.search(key):
        return REDACTED if value is not None else None
    return _jsonable(value)


def entity_type(obj: Any) -> str:
    """`CertificationGroup` → `certification_group`."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(obj).__name__).lower()


def _audited(obj: Any, org_id: uuid.UUID) -> bool:
    table = getattr(obj, "__tablename__", None)
    if table in SKIPPED_TABLES:
        return False
    if isinstance(obj, Organization):
        return obj.id == org_id
    return isinstance(obj, TenantScoped)


def _snapshot(obj: Any) -> dict[str, Any]:
    """Loaded column values, read from the instance dict (no SQL inside the flush)."""
    state = inspect(obj)
    values = state.dict
    return {
        attr.key: _clean(attr.key, values[attr.key])
        for attr in state.mapper.column_attrs
        if attr.key in values and attr.key != "org_id"
    }


def _changes(obj: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    state = inspect(obj)
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for attr in state.mapper.column_attrs:
        hist = state.attrs[attr.key].history
        if not hist.has_changes():
            continue
        before[attr.key] = _clean(attr.key, hist.deleted[0] if hist.deleted else None)
        after[attr.key] = _clean(attr.key, hist.added[0] if hist.added else None)
    return before, after


def _event(action: str, obj: Any, before: Any, after: Any, org_id: uuid.UUID) -> dict[str, Any]:
    entity_id = inspect(obj).dict.get("id")
    return {
        "id": uuid.uuid4(),
        "org_id": org_id,
        "actor": current_actor(),
        "action": action,
        "entity_type": entity_type(obj),
        "entity_id": entity_id if isinstance(entity_id, uuid.UUID) else None,
        "before": before,
        "after": after,
        "request_id": current_request_id(),
        "created_at": utcnow(),
    }


def _audit_flush(session: Session, _ctx: Any) -> None:
    org_id = current_org_id()
    if current_actor() is None or org_id is None:
        return
    rows: list[dict[str, Any]] = []
    for obj in session.new:
        if _audited(obj, org_id):
            rows.append(_event("create", obj, None, _snapshot(obj), org_id))
    for obj in session.dirty:
        if _audited(obj, org_id):
            before, after = _changes(obj)
            if after:
                rows.append(_event("update", obj, before, after, org_id))
    for obj in session.deleted:
        if _audited(obj, org_id):
            rows.append(_event("delete", obj, _snapshot(obj), None, org_id))
    if rows:
        session.connection().execute(insert(AuditEvent.__table__), rows)


def record(
    session: Session,
    action: str,
    entity_type: str,
    entity_id: uuid.UUID | None = None,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Audit a set-based change (bulk upsert, fan-out) that no flush will see. Flushes nothing."""
    org_id = current_org_id()
    if org_id is None:
        return
    session.connection().execute(
        insert(AuditEvent.__table__),
        [
            {
                "id": uuid.uuid4(),
                "org_id": org_id,
                "actor": current_actor() or "system",
                "action": action,
                "entity_type": entity_type,
                "entity_id": entity_id,
                "before": _jsonable(before) if before is not None else None,
                "after": _jsonable(after) if after is not None else None,
                "request_id": current_request_id(),
                "created_at": utcnow(),
            }
        ],
    )


def install_audit_trail(factory: sessionmaker[Session]) -> None:
    """Record an audit event for every audited ORM change flushed by this factory's sessions."""
    event.listen(factory, "after_flush", _audit_flush)
