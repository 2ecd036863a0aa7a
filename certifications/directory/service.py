"""The directory service: roles, employees, assets, clients and job locations (SPEC §4).

Create, read, update, soft delete and list with filters. Employee changes that affect role-based
assignment (created in a role, role changed, deactivated, reactivated) ask for one role fan-out
in the same transaction. Bulk upsert and CSV import live in `certifications.directory.bulk`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from certifications.assignments.schedule import request_tick
from certifications.automation.withdraw import withdraw_for_subjects
from certifications.directory.models import Asset, Client, Employee, Location, Role
from infra.context import require_org_id
from infra.database import get_or_not_found, utcnow
from infra.errors import Conflict, Invalid
from jobs.models import Job
from jobs.outbox import request_job

FANOUT_ACTOR = "fanout_employees"
FANOUT_JOB_KIND = "role_fanout"


@dataclass(frozen=True)
class Reference:
    """A field pointing at another directory entity of the same organization."""

    field: str
    model: type[Role] | type[Client]
    entity: str


@dataclass(frozen=True)
class Kind:
    """One directory entity type: its model and the fields a client may write."""

    name: str
    plural: str
    model: Any
    fields: tuple[str, ...]
    reference: Reference | None = None

    @property
    def table(self) -> Any:
        return self.model.__table__


KINDS: dict[str, Kind] = {
    k.plural: k
    for k in (
        Kind("role", "roles", Role, ("name", "external_id", "active")),
        Kind(
            "employee",
            "employees",
            Employee,
            ("name", "email", "role_id", "external_id", "active", "user_sub"),
            Reference("role_id", Role, "role"),
        ),
        Kind("asset", "assets", Asset, ("name", "serial_number", "external_id", "active")),
        Kind("client", "clients", Client, ("name", "contact_email", "external_id", "active")),
        Kind(
            "location",
            "locations",
            Location,
            ("name", "address", "client_id", "external_id", "active"),
            Reference("client_id", Client, "client"),
        ),
    )
}


def list_statement(
    kind: Kind,
    *,
    active: bool | None = None,
    q: str | None = None,
    role_id: uuid.UUID | None = None,
    client_id: uuid.UUID | None = None,
    external_id: list[str] | None = None,
    updated_since: datetime | None = None,
) -> Select[Any]:
    """The filtered list query; the caller paginates it by (name, id)."""
    model = kind.model
    stmt = select(model)
    if external_id:
        stmt = stmt.where(model.external_id.in_(external_id))
    if updated_since is not None:
        stmt = stmt.where(model.updated_at >= updated_since)
    if active is not None:
        stmt = stmt.where(model.active.is_(active))
    if q:
        stmt = stmt.where(func.lower(model.name).contains(q.lower(), autoescape=True))
    if role_id is not None:
        stmt = stmt.where(model.role_id == role_id)
    if client_id is not None:
        stmt = stmt.where(model.client_id == client_id)
    return stmt


def get(session: Session, kind: Kind, item_id: uuid.UUID) -> Any:
    return get_or_not_found(session, kind.model, item_id, kind.name)


def create(session: Session, kind: Kind, data: dict[str, Any]) -> Any:
    data = _check_managers(session, kind, data, None)
    _check_reference(session, kind, data)
    _check_unique(session, kind, data, None)
    item = kind.model(**data)
    session.add(item)
    session.flush()
    if kind.name == "employee" and item.active and item.role_id is not None:
        request_fanout(session, [item.id])
    return item


def update(session: Session, kind: Kind, item_id: uuid.UUID, changes: dict[str, Any]) -> Any:
    item = get(session, kind, item_id)
    if kind.name == "role" and item.active and changes.get("active") is False:
        held = active_holders(session, [item.id]).get(item.id)
        if held:
            raise Conflict(held_message(held), {"employees": [held_message(held)]})
    changes = _check_managers(session, kind, changes, item.id)
    _check_reference(session, kind, changes, item)
    _check_unique(session, kind, changes, item.id)
    before = _fanout_state(kind, item)
    was_active = item.active
    for key, value in changes.items():
        setattr(item, key, value)
    session.flush()
    if before != _fanout_state(kind, item):
        request_fanout(session, [item.id])
    if kind.name != "role" and was_active != item.active:
        activity_changed(session, [item.id] if was_active else [])
    return item


def activity_changed(session: Session, deactivated: Iterable[uuid.UUID]) -> None:
    """Subjects were deactivated or reactivated: a leaver's pending reminders and open tasks
    are withdrawn now, and the tick re-evaluates the rules (a returner's resume)."""
    ids = list(deactivated)
    if ids:
        withdraw_for_subjects(session, require_org_id(), ids, utcnow())
    request_tick(session)


def delete(session: Session, kind: Kind, item_id: uuid.UUID) -> None:
    """Soft delete: `active=false` keeps the history; a role still held is refused (409)."""
    item = get(session, kind, item_id)
    if item.active:
        update(session, kind, item.id, {"active": False})


def active_holders(session: Session, role_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, int]:
    """How many active employees hold each of these roles (roles held by none are absent)."""
    ids = list(role_ids)
    if not ids:
        return {}
    stmt = (
        select(Employee.role_id, func.count())
        .where(Employee.role_id.in_(ids), Employee.active.is_(True))
        .group_by(Employee.role_id)
    )
    rows = session.execute(stmt).all()
    return {role_id: count for role_id, count in rows if role_id is not None}  # IN: never NULL


def held_message(count: int) -> str:
    noun = "employee" if count == 1 else "employees"
    return f"Role is held by {count} active {noun}; move them to another role first."


def request_fanout(session: Session, employee_ids: Iterable[uuid.UUID]) -> Job | None:
    """One outbox request re-evaluating role-based assignments of these employees."""
    ids = [str(i) for i in employee_ids]
    if not ids:
        return None
    return request_job(
        session, FANOUT_ACTOR, job_kind=FANOUT_JOB_KIND, total=len(ids), employee_ids=ids
    )


def _fanout_state(kind: Kind, item: Any) -> tuple[Any, ...] | None:
    if kind.name != "employee":
        return None
    return (item.role_id, item.active)


def _check_reference(session: Session, kind: Kind, data: dict[str, Any], item: Any = None) -> None:
    """`role_id` / `client_id` must name an active entity of this org (another org's: unknown).

    Keeping the reference a row already has is fine even if that role/client became inactive.
    """
    ref = kind.reference
    if ref is None or data.get(ref.field) is None:
        return
    if item is not None and getattr(item, ref.field) == data[ref.field]:
        return
    active = session.scalar(select(ref.model.active).where(ref.model.id == data[ref.field]))
    if active is None:
        raise Invalid({ref.field: [f"Unknown {ref.entity}."]})
    if not active:
        raise Invalid({ref.field: [f"The {ref.entity} is inactive."]})


def _check_managers(
    session: Session, kind: Kind, data: dict[str, Any], item_id: uuid.UUID | None
) -> dict[str, Any]:
    """`manager_id` / `manager_ids` name employees of this org (another org's: unknown, 422);
    an employee does not manage themselves. Location manager ids are stored as strings."""
    data = dict(data)
    if data.get("manager_id") is not None:
        if data["manager_id"] == item_id:
            raise Invalid({"manager_id": ["An employee cannot be their own manager."]})
        if session.scalar(select(Employee.id).where(Employee.id == data["manager_id"])) is None:
            raise Invalid({"manager_id": ["Unknown employee."]})
    if "manager_ids" in data:
        wanted = list(dict.fromkeys(data["manager_ids"] or []))
        found = set(session.scalars(select(Employee.id).where(Employee.id.in_(wanted))))
        unknown = [i for i in wanted if i not in found]
        if unknown:
            raise Invalid({"manager_ids": [f"Unknown employee id: {i}" for i in unknown]})
        data["manager_ids"] = [str(i) for i in wanted]
    return data


_UNIQUE_FIELDS = {"role": ("external_id", "name"), "employee": ("external_id", "user_sub")}


def _check_unique(
    session: Session, kind: Kind, data: dict[str, Any], item_id: uuid.UUID | None
) -> None:
    """Answer a readable 409 for a taken `external_id` (or role name) before the database does."""
    model = kind.model
    for field in _UNIQUE_FIELDS.get(kind.name, ("external_id",)):
        value = data.get(field)
        if value is None:
            continue
        column = getattr(model, field)
        if field == "name":  # role names are unique ignoring case
            stmt = select(model.id).where(func.lower(column) == value.lower())
        else:
            stmt = select(model.id).where(column == value)
        if item_id is not None:
            stmt = stmt.where(model.id != item_id)
        if session.scalar(stmt.limit(1)) is not None:
            raise Conflict(
                f"Another {kind.name} already has this {field}.",
                {field: [f"Already used by another {kind.name}."]},
            )
