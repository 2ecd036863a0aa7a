"""The directory service: roles, employees, assets, clients and job locations (SPEC §4).

Create, read, update, soft delete and list with filters. Changes that affect who must hold what
(an employee's roles, an asset's category or location, a location's client, any subject's
`active`) ask for one requirement fan-out in the same transaction. Employees hold several roles
(`role_ids`; `role_id` is the first), named by id, `role_external_id` or `role_name`.
Bulk upsert and CSV import live in `certifications.directory.bulk`; rosters in `memberships`.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Executable, Select, bindparam, func, insert, select
from sqlalchemy import delete as sql_delete
from sqlalchemy.orm import Session

from certifications.assignments.schedule import request_tick
from certifications.automation.withdraw import withdraw_for_subjects
from certifications.catalog.models import Certification
from certifications.directory.models import Asset, Client, Employee, EmployeeRole, Location, Role
from infra.context import require_org_id
from infra.database import get_or_not_found, utcnow
from infra.dialect import LIKE_ESCAPE, contains_pattern, one_of_param
from infra.errors import Conflict, Invalid
from jobs.models import Job
from jobs.outbox import request_job
from tenancy.scoping import prebuilt_tenant_statement

FANOUT_ACTOR = "fanout_employees"
FANOUT_JOB_KIND = "role_fanout"


@dataclass(frozen=True)
class Reference:
    """A field pointing at another directory entity of the same organization."""

    field: str
    model: type[Role] | type[Client] | type[Location] | type[Employee]
    entity: str


@dataclass(frozen=True)
class Kind:
    """One directory entity type: its model and the fields a client may write."""

    name: str
    plural: str
    model: Any
    fields: tuple[str, ...]
    references: tuple[Reference, ...] = ()

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
            (Reference("role_id", Role, "role"),),
        ),
        Kind(
            "asset",
            "assets",
            Asset,
            (
                "name",
                "serial_number",
                "external_id",
                "active",
                "category",
                "location_id",
                "custodian_id",
            ),
            (
                Reference("location_id", Location, "location"),
                Reference("custodian_id", Employee, "employee"),
            ),
        ),
        Kind("client", "clients", Client, ("name", "contact_email", "external_id", "active")),
        Kind(
            "location",
            "locations",
            Location,
            ("name", "address", "client_id", "external_id", "active"),
            (Reference("client_id", Client, "client"),),
        ),
    )
}


# The list filters and when a request uses each (the query schemas' fields; `active` is no
# value but a part of the SQL: see `list_statement`).
LIST_FILTERS: dict[str, Callable[[Any], bool]] = {
    "external_id": bool,
    "updated_since": lambda v: v is not None,
    "q": bool,
    "role_id": lambda v: v is not None,
    "client_id": lambda v: v is not None,
    "location_id": lambda v: v is not None,
    "category": lambda v: v is not None,
}


def list_filters(filters: Mapping[str, Any]) -> frozenset[str]:
    """The filters of `filters` (a list request's query) that constrain the list."""
    return frozenset(name for name, used in LIST_FILTERS.items() if used(filters.get(name)))


def list_statement(
    kind: Kind,
    columns: Sequence[Any],
    dialect_name: str,
    used: frozenset[str],
    active: bool | None,
) -> Select[Any]:
    """The list query of `kind` selecting `columns`, with the filters `used` as bind parameters
    (their values: `list_params`) and `active` in its SQL: one statement per shape, which the
    caller builds once, pages by (name, id) and scopes with `prebuilt_tenant_statement`. (The
    employees' role_ids come from `page_roles`.)"""
    model = kind.model
    stmt = select(*columns)
    if "external_id" in used:
        stmt = stmt.where(one_of_param(dialect_name, model.external_id, "external_id"))
    if "updated_since" in used:
        stmt = stmt.where(model.updated_at >= bindparam("updated_since"))
    if active is not None:
        stmt = stmt.where(model.active.is_(active))
    if "q" in used:  # a substring, its wildcards escaped (`list_params`)
        stmt = stmt.where(func.lower(model.name).like(bindparam("q"), escape=LIKE_ESCAPE))
    if "role_id" in used:  # any of the employee's roles
        role = bindparam("role_id", type_=EmployeeRole.role_id.type)
        held = select(EmployeeRole.employee_id).where(EmployeeRole.role_id == role)
        held = prebuilt_tenant_statement(held, EmployeeRole)
        stmt = stmt.where((model.role_id == role) | model.id.in_(held))
    if "client_id" in used:
        stmt = stmt.where(model.client_id == bindparam("client_id"))
    if "location_id" in used:
        stmt = stmt.where(model.location_id == bindparam("location_id"))
    if "category" in used:
        stmt = stmt.where(func.lower(model.category) == bindparam("category"))
    return stmt


def list_params(filters: Mapping[str, Any], used: frozenset[str]) -> dict[str, Any]:
    """The bind values of `list_statement`'s filters."""
    params = {name: filters[name] for name in used}
    if "q" in used:
        params["q"] = contains_pattern(str(filters["q"]))
    if "category" in used:
        params["category"] = str(filters["category"]).strip().lower()
    if "external_id" in used:
        params["external_id"] = list(filters["external_id"])
    return params


def _page_roles_statement(dialect_name: str) -> Select[Any]:
    c = EmployeeRole.__table__.c
    stmt = (
        select(c.employee_id, c.role_id)
        .where(one_of_param(dialect_name, c.employee_id, "ids"))
        .order_by(c.employee_id, c.position)
    )
    return prebuilt_tenant_statement(stmt, EmployeeRole.__table__)


# Built once per dialect, on first use (the tenant tables are known once the mappers are):
# every list page of employees asks it, and building it, adding the session's tenant option and
# guarding it per request was a fifth of the page's CPU.
_PAGE_ROLES = functools.cache(_page_roles_statement)


def page_roles(
    rows: Callable[[Executable, dict[str, Any]], Iterable[Any]],
    dialect_name: str,
    employee_ids: Sequence[uuid.UUID],
) -> dict[uuid.UUID, list[Any]]:
    """The roles of these employees, first one first (`Employee.role_ids`), in one query, run
    by `rows` (statement, parameters → rows: `run_prebuilt` on a session, or a request's
    reader of prebuilt statements)."""
    found: dict[uuid.UUID, list[Any]] = {}
    if employee_ids:
        stmt = _PAGE_ROLES(dialect_name)
        for employee_id, role_id in rows(stmt, {"ids": list(employee_ids)}):
            found.setdefault(employee_id, []).append(role_id)
    return found


def get(session: Session, kind: Kind, item_id: uuid.UUID) -> Any:
    return get_or_not_found(session, kind.model, item_id, kind.name)


def create(session: Session, kind: Kind, data: dict[str, Any]) -> Any:
    data = _check_managers(session, kind, data, None)
    roles = resolve_roles(session, data, None) if kind.name == "employee" else None
    _check_reference(session, kind, data)
    _check_unique(session, kind, data, None)
    item = kind.model(**data)
    session.add(item)
    session.flush()
    if roles:
        _replace_roles(session, item, roles)
    if kind.name != "role" and item.active and _may_be_required(session, kind, item):
        request_fanout(session, [item.id], kind.name)
    return item


def update(session: Session, kind: Kind, item_id: uuid.UUID, changes: dict[str, Any]) -> Any:
    item = get(session, kind, item_id)
    changes = dict(changes)
    if kind.name == "role" and item.active and changes.get("active") is False:
        held = active_holders(session, [item.id]).get(item.id)
        if held:
            raise Conflict(held_message(held), {"employees": [held_message(held)]})
    changes = _check_managers(session, kind, changes, item.id)
    roles = resolve_roles(session, changes, item) if kind.name == "employee" else None
    _check_reference(session, kind, changes, item)
    _check_unique(session, kind, changes, item.id)
    before = _fanout_state(kind, item)
    was_active = item.active
    for key, value in changes.items():
        setattr(item, key, value)
    session.flush()
    if roles is not None and roles != item.role_ids:
        _replace_roles(session, item, roles)
    if before != _fanout_state(kind, item):
        request_fanout(session, [item.id], kind.name)
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
    holds = (
        select(Employee.id.label("employee_id"), Employee.role_id.label("role_id"))
        .where(Employee.role_id.in_(ids), Employee.active.is_(True))
        .union(
            select(EmployeeRole.employee_id, EmployeeRole.role_id)
            .join(Employee, Employee.id == EmployeeRole.employee_id)
            .where(EmployeeRole.role_id.in_(ids), Employee.active.is_(True))
        )
        .subquery("holds")
    )
    stmt = select(holds.c.role_id, func.count()).group_by(holds.c.role_id)
    rows = session.execute(stmt).all()
    return {role_id: count for role_id, count in rows if role_id is not None}  # IN: never NULL


def held_message(count: int) -> str:
    noun = "employee" if count == 1 else "employees"
    return f"Role is held by {count} active {noun}; move them to another role first."


def request_fanout(
    session: Session, subject_ids: Iterable[uuid.UUID], kind: str = "employee"
) -> Job | None:
    """One outbox request re-evaluating the rule-made assignments of these subjects."""
    ids = [str(i) for i in subject_ids]
    if not ids:
        return None
    if kind == "employee":
        return request_job(
            session, FANOUT_ACTOR, job_kind=FANOUT_JOB_KIND, total=len(ids), employee_ids=ids
        )
    return request_job(
        session, FANOUT_ACTOR, job_kind=FANOUT_JOB_KIND, total=len(ids), subject_ids=ids
    )


def fanout_state(kind: str, row: Any) -> tuple[Any, ...] | None:
    """What a subject's requirements depend on (a dict row or a model); None for roles."""

    def value(field: str) -> Any:
        return row.get(field) if isinstance(row, dict) else getattr(row, field)

    if kind == "employee":
        return (tuple(value("role_ids") or ()), value("active"))
    if kind == "asset":
        category = value("category")
        return (
            category.strip().lower() if category else None,
            value("location_id"),
            value("active"),
        )
    if kind == "location":
        return (value("client_id"), value("active"))
    if kind == "client":
        return (value("active"),)
    return None


def _fanout_state(kind: Kind, item: Any) -> tuple[Any, ...] | None:
    return fanout_state(kind.name, item)


def _may_be_required(session: Session, kind: Kind, item: Any) -> bool:
    """A new subject can only be required if it has a source (employees, assets) or some
    certification of its type applies to all or names clients (clients and locations)."""
    if kind.name == "employee":
        return bool(item.role_ids)
    if kind.name == "asset":
        return bool(item.category or item.location_id)
    return (
        session.scalar(
            select(Certification.id)
            .where(Certification.type == kind.name, Certification.archived_at.is_(None))
            .limit(1)
        )
        is not None
    )


ROLE_INPUTS = ("role_ids", "role_id", "role_external_id", "role_name")


def roles_given(data: dict[str, Any]) -> list[str]:
    """Which of `ROLE_INPUTS` `data` gives. An empty one (a blank CSV cell, null) beside one
    with a value is dropped as not given; empty ones alone clear the roles."""
    given = [f for f in ROLE_INPUTS if f in data]
    valued = [f for f in given if data[f] not in (None, [])]
    for f in given:
        if valued and f not in valued:
            del data[f]
    return valued or given[:1]


def resolve_roles(session: Session, data: dict[str, Any], item: Any) -> list[uuid.UUID] | None:
    """The employee's roles from whichever of `ROLE_INPUTS` `data` gives (popped; `role_id` is
    then set to the first role), or None when it gives none. Unknown roles (another org's)
    and newly given inactive ones answer 422 naming the field."""
    given = roles_given(data)
    if not given:
        return None
    for f in ROLE_INPUTS:  # empty siblings of the one kept
        if f in data and f not in given:
            del data[f]
    if len(given) > 1:
        raise Invalid({given[1]: [f"Give the roles one way: {' or '.join(ROLE_INPUTS)}."]})
    field = given[0]
    value = data.pop(field)
    values = [] if value is None else value if isinstance(value, list) else [value]
    found = lookup_roles(session, field, values)
    missing = [v for v in values if v not in found]
    if missing:
        raise Invalid({field: [f"Unknown role: {v}" for v in missing]})
    roles = list(dict.fromkeys(found[v][0] for v in values))
    kept = set(item.role_ids) if item is not None else set()
    inactive = [str(v) for v in values if not found[v][1] and found[v][0] not in kept]
    if inactive:
        raise Invalid({field: [f"The role is inactive: {v}" for v in inactive]})
    data["role_id"] = roles[0] if roles else None
    return roles


def lookup_roles(
    session: Session, field: str, values: list[Any]
) -> dict[Any, tuple[uuid.UUID, bool]]:
    """value → (role id, active) for role ids, external ids or names (names ignoring case)."""
    if not values:
        return {}
    if field in ("role_ids", "role_id"):
        rows = session.execute(select(Role.id, Role.id, Role.active).where(Role.id.in_(values)))
        return {key: (rid, active) for key, rid, active in rows}
    if field == "role_external_id":
        rows = session.execute(
            select(Role.external_id, Role.id, Role.active).where(Role.external_id.in_(values))
        )
        return {key: (rid, active) for key, rid, active in rows}
    lowered = {v.lower(): v for v in values}
    rows = session.execute(
        select(func.lower(Role.name), Role.id, Role.active).where(
            func.lower(Role.name).in_(list(lowered))
        )
    )
    return {lowered[key]: (rid, active) for key, rid, active in rows}


def _replace_roles(session: Session, item: Employee, roles: list[uuid.UUID]) -> None:
    session.execute(sql_delete(EmployeeRole).where(EmployeeRole.employee_id == item.id))
    if roles:
        org_id = require_org_id()
        session.execute(
            insert(EmployeeRole),
            [
                {"org_id": org_id, "employee_id": item.id, "role_id": r, "position": i}
                for i, r in enumerate(roles)
            ],
        )
    session.expire(item, ["role_links"])


def _check_reference(session: Session, kind: Kind, data: dict[str, Any], item: Any = None) -> None:
    """Each reference (`client_id`, an asset's `location_id`, ...) must name an active entity of
    this org (another org's: unknown). Keeping the reference a row already has is fine even if
    that entity became inactive."""
    for ref in kind.references:
        if data.get(ref.field) is None:
            continue
        if item is not None and getattr(item, ref.field) == data[ref.field]:
            continue
        if kind.name == "employee" and ref.field == "role_id":
            continue  # resolved with the other roles (`resolve_roles`)
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
