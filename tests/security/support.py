"""Shared machinery of the security suite: the operation inventory, valid sample bodies, and
snapshots of everything an org owns (the world of one row per kind is `make_world`, in
`tests.support.factories`).

Everything is discovered from the app's OpenAPI document, so a new endpoint is covered by the
matrices the moment it is registered, or fails them with a message saying what to add here.
"""

from __future__ import annotations

import copy
import functools
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from infra import context
from infra import database as db
from infra.database import Base
from tenancy.auth import TENANT_SCOPES
from tenancy.models import Organization, TenantScoped
from tests.conftest import RUNTIME
from tests.support.factories import World  # kind -> id, as `make_world` returns it
from tests.support.suite import SETTINGS

PREFIX = "/api/v1"
WRITE_METHODS = ("post", "put", "patch")
# Families that belong to the HSE/Production module (SPEC §3 module flag; decisions.md keeps
# /jobs readable without it, since directory bulk imports produce jobs too).
HSE_PREFIXES = (
    "/notification-preferences",
    "/certification-groups",
    "/certifications",
    "/assignments",
    "/views",
    "/compliance",
    "/tasks",
    "/notifications",
    "/documents",
    "/submissions",
    "/reports",
)
# Self-service (`self` tokens): HSE endpoints too.
SELF_PREFIX = "/me"


# ---------------------------------------------------------------------------------------------
# The operation inventory
# ---------------------------------------------------------------------------------------------


@dataclass
class Operation:
    method: str  # lower case
    path: str  # OpenAPI path without the /api/v1 prefix, e.g. "/jobs/{job_id}"
    spec: dict[str, Any]
    params: list[dict[str, Any]]
    body_schema: dict[str, Any] | None
    doc: dict[str, Any] = field(repr=False)

    @property
    def id(self) -> str:
        return f"{self.method.upper()} {self.path}"

    @property
    def path_params(self) -> list[dict[str, Any]]:
        return [p for p in self.params if p["in"] == "path"]

    @property
    def uuid_params(self) -> list[str]:
        return [
            p["name"]
            for p in self.path_params
            if resolve(self.doc, p["schema"]).get("format") == "uuid"
        ]

    @property
    def query_params(self) -> list[dict[str, Any]]:
        return [p for p in self.params if p["in"] == "query"]

    @property
    def required_scopes(self) -> list[str] | None:
        """Scopes from `requires`' description; [] = any valid token; None = undeclared."""
        text = self.spec.get("description") or ""
        m = re.search(r"Requires scope (.+?)\.(\s|$)", text)
        if m:
            return re.findall(r"`([^`]+)`", m.group(1))
        if "Requires a valid token." in text:
            return []
        return None

    @property
    def is_hse(self) -> bool:
        return self.path.startswith(HSE_PREFIXES) or self.is_self

    @property
    def is_self(self) -> bool:
        return self.path == SELF_PREFIX or self.path.startswith(SELF_PREFIX + "/")

    @property
    def is_platform(self) -> bool:
        return self.required_scopes == ["platform:admin"]


def resolve(doc: dict[str, Any], schema: Any, _seen: frozenset[str] = frozenset()) -> Any:
    """Inline every `$ref`; a recursive reference (a tree) is cut to `{}` at its second visit."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            ref = schema["$ref"]
            if ref in _seen:
                return {}
            target: Any = doc
            for part in ref.lstrip("#/").split("/"):
                target = target.get(part) if isinstance(target, dict) else None
            if target is None:  # a dangling reference; test_fuzz flags the document
                return {"x-unresolved": ref}
            return resolve(doc, target, _seen | {ref})
        return {k: resolve(doc, v, _seen) for k, v in schema.items()}
    if isinstance(schema, list):
        return [resolve(doc, v, _seen) for v in schema]
    return {} if schema is None else schema


def dangling_refs(doc: dict[str, Any]) -> list[str]:
    import json

    refs = set(re.findall(r'"\$ref": "([^"]+)"', json.dumps(doc)))
    bad = []
    for ref in sorted(refs):
        target: Any = doc
        for part in ref.lstrip("#/").split("/"):
            target = target.get(part) if isinstance(target, dict) else None
        if target is None:
            bad.append(ref)
    return bad


@functools.cache
def openapi_doc() -> dict[str, Any]:
    from api import create_app

    app = create_app(SETTINGS, RUNTIME)
    resp = app.test_client().get(PREFIX + "/openapi.json")
    assert resp.status_code == 200
    return resp.get_json()


def operations() -> list[Operation]:
    doc = openapi_doc()
    ops = []
    for full_path, item in sorted(doc["paths"].items()):
        path = full_path.removeprefix(PREFIX)
        shared = item.get("parameters", [])
        for method, spec in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            params = [resolve(doc, p) for p in shared + spec.get("parameters", [])]
            body = None
            content = (spec.get("requestBody") or {}).get("content", {})
            if "application/json" in content:
                body = resolve(doc, content["application/json"].get("schema"))
            ops.append(Operation(method, path, spec, params, body, doc))
    return ops


def route_inventory(app: Any) -> list[tuple[str, str]]:
    """(METHOD, rule) for every /api/v1 route of the URL map (cross-checks the document)."""
    out = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(PREFIX) or rule.rule.startswith(
            (PREFIX + "/openapi.json", PREFIX + "/docs")
        ):
            continue
        for m in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            out.append((m, rule.rule.removeprefix(PREFIX)))
    return out


# ---------------------------------------------------------------------------------------------
# Resource kinds: which table a path segment or an `*_id` field points at
# ---------------------------------------------------------------------------------------------

# URL collection segment -> kind (a key of the world).
SEGMENT_KINDS = {
    "roles": "role",
    "employees": "employee",
    "assets": "asset",
    "clients": "client",
    "locations": "location",
    "certification-groups": "group",
    "certifications": "certification",
    "assignments": "assignment",
    "jobs": "job",
    "tasks": "task",
    "notifications": "notification",
    "form-submissions": "form_submission",
    "audit-events": "audit_event",
    "documents": "document",
    "submissions": "submission",
    "webhooks": "webhook",
    "deliveries": "webhook_delivery",
    "schedules": "report_schedule",
}
# Body/query field name -> kind.
FIELD_KINDS = {
    "role_id": "role",
    "role_ids": "role",
    "employee_id": "employee",
    "asset_id": "asset",
    "client_id": "client",
    "client_ids": "client",
    "location_id": "location",
    "location_ids": "location",
    "custodian_id": "employee",
    "group_id": "group",
    "group_ids": "group",
    "parent_id": "group",
    "certification_id": "certification",
    "satisfied_by": "certification",
    "assignment_id": "assignment",
    "job_id": "job",
    "task_id": "task",
    "document_id": "document",
    "submission_id": "submission",
    "webhook_id": "webhook",
    "delivery_id": "webhook_delivery",
    "assignee_id": "employee",
    "default_task_assignee_id": "employee",
    "task_assignee_id": "employee",
    "subject_id": "employee",
    "subject_ids": "employee",
    "manager_id": "employee",
    "manager_ids": "employee",
}


def kind_for_route(op: Operation, param: str) -> str | None:
    """The kind of the row a path parameter names: the collection segment right before it."""
    parts = op.path.split("/")
    idx = parts.index("{" + param + "}")
    seg = parts[idx - 1] if idx > 0 else ""
    if seg == "members":  # a roster: of a location or of a client (one membership each)
        return "membership" if parts[1] == "locations" else "client_membership"
    if seg in SEGMENT_KINDS:
        return SEGMENT_KINDS[seg]
    return FIELD_KINDS.get(param)


# ---------------------------------------------------------------------------------------------
# Snapshots: every row an org owns, to prove a foreign call changed nothing
# ---------------------------------------------------------------------------------------------


def tenant_tables() -> list[Any]:
    """Mapped tenant tables that exist in the database (a model may land before its migration)."""
    from sqlalchemy import inspect

    existing = set(inspect(db.get_engine()).get_table_names())
    return [
        m.class_
        for m in Base.registry.mappers
        if issubclass(m.class_, TenantScoped)
        and hasattr(m.class_, "__table__")
        and m.class_.__table__.name in existing
    ]


def snapshot(org_id: uuid.UUID) -> dict[str, list[tuple[Any, ...]]]:
    """All rows of all tenant tables of this org, plus the org row itself."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with context.tenant(org_id), db.new_session() as s:
        for model in tenant_tables():
            table = model.__table__
            rows = s.execute(
                select(table).where(table.c.org_id == org_id),
                execution_options={"all_tenants": True},
            ).all()
            out[table.name] = sorted((tuple(map(repr, r)) for r in rows), key=repr)
        org = s.execute(select(Organization.__table__).where(Organization.id == org_id)).one()
        out["organizations"] = [tuple(map(repr, org))]
    return out


def all_ids(org_id: uuid.UUID) -> set[str]:
    """Every id-like value (row ids and the org id) of this org, as API strings."""
    ids = {str(org_id)}
    with context.tenant(org_id), db.new_session() as s:
        for model in tenant_tables():
            table = model.__table__
            if "id" not in table.c:
                continue
            ids.update(
                str(v)
                for v in s.scalars(
                    select(table.c.id).where(table.c.org_id == org_id),
                    execution_options={"all_tenants": True},
                )
            )
    return ids


# ---------------------------------------------------------------------------------------------
# Valid sample inputs, generated from the document (with per-operation overrides)
# ---------------------------------------------------------------------------------------------

# "METHOD /path" -> body (or callable(world) -> body) where the generated one is not accepted.
SAMPLES: dict[str, Any] = {
    "POST /organizations": {"name": "Sample org"},
    "PATCH /org": {"name": "Renamed org"},
    "PUT /org/modules/{module}": {"enabled": True},
    # Renew the world's own assignment (assign would need a second scope, and the world's
    # employee already holds the certification).
    "POST /assignments/bulk": lambda w: {
        "action": "renew",
        "certification_id": str(w["certification"]),
        "subject_type": "employee",
        "subject_ids": [str(w["employee"])],
    },
    "POST /assignments/{assignment_id}/snooze": {"until": "2999-01-01", "reason": "On leave"},
    "POST /reports/schedules": lambda w: {
        "kind": "audit-pack",
        "scope": {"location_id": str(w["location"])},
        "cron": "0 7 * * 1",
        "recipients": ["hse@example.com"],
    },
    "PATCH /reports/schedules/{schedule_id}": {"cron": "30 6 * * 1-5"},
}
# "METHOD /path" -> {param: value} for non-uuid path parameters.
PATH_SAMPLES: dict[str, dict[str, str]] = {
    "PUT /org/modules/{module}": {"module": "hse"},
    "GET /notification-preferences/{email}": {"email": "someone@example.com"},
    "PUT /notification-preferences/{email}": {"email": "someone@example.com"},
    "DELETE /notification-preferences/{email}": {"email": "someone@example.com"},
}
STRING_FORMATS = {
    "date": "2026-03-01",
    "date-time": "2026-03-01T10:00:00+00:00",
    "email": "someone@example.com",
    "uri": "https://example.com/hook",
    "url": "https://example.com/hook",
    "decimal": "12.50",
}


def sample_value(schema: dict[str, Any], name: str, world: World) -> Any:
    if "enum" in schema and schema["enum"]:
        values = [v for v in schema["enum"] if v is not None]
        return values[0] if values else None
    typ = schema.get("type")
    if isinstance(typ, list):
        typ = next((t for t in typ if t != "null"), None)
    if "oneOf" in schema or "anyOf" in schema:
        for sub in schema.get("oneOf") or schema.get("anyOf"):
            if sub.get("type") != "null":
                return sample_value(sub, name, world)
    fmt = schema.get("format")
    if typ == "string" or (typ is None and fmt):
        if fmt == "uuid":
            kind = FIELD_KINDS.get(name)
            return str(world[kind]) if kind in world else str(uuid.uuid4())
        if fmt in STRING_FORMATS:
            return STRING_FORMATS[fmt]
        n = max(int(schema.get("minLength", 1)), 1)
        base = f"sample {name} {uuid.uuid4().hex[:6]}"
        return (base * (n // len(base) + 1))[: max(n, min(len(base), schema.get("maxLength", 200)))]
    if typ == "integer":
        return max(int(schema.get("minimum", 1)), 1)
    if typ == "number":
        return max(schema.get("minimum", 1), 1)
    if typ == "boolean":
        return True
    if typ == "array":
        item = schema.get("items", {})
        if name in FIELD_KINDS and FIELD_KINDS[name] in world:
            return [str(world[FIELD_KINDS[name]])]
        n = int(schema.get("minItems", 0))
        return [sample_value(item, name, world) for _ in range(n)]
    if typ == "object" or "properties" in schema:
        return sample_object(schema, world)
    return None


def sample_object(
    schema: dict[str, Any], world: World, *, all_fields: bool = False
) -> dict[str, Any]:
    props = schema.get("properties", {})
    required = set(schema.get("required", []))
    out = {}
    for name, sub in props.items():
        if sub.get("readOnly"):
            continue
        if name in required or (all_fields and name == "name"):
            out[name] = sample_value(sub, name, world)
    if not out and props and all_fields:
        # A PATCH with no required field: change the first simple writable field.
        for name, sub in props.items():
            if not sub.get("readOnly") and sub.get("type") in ("string", "boolean", "integer"):
                out[name] = sample_value(sub, name, world)
                break
    return out


def sample_body(op: Operation, world: World) -> Any:
    if op.body_schema is None:
        return None
    override = SAMPLES.get(op.id)
    if override is not None:
        return copy.deepcopy(override(world) if callable(override) else override)
    return sample_object(op.body_schema, world, all_fields=op.method == "patch")


def build_path(op: Operation, world: World, ids: dict[str, uuid.UUID] | None = None) -> str:
    """The concrete URL (relative to /api/v1): uuid params from `ids`, else the world's kind."""
    path = op.path
    extra = PATH_SAMPLES.get(op.id, {})
    for p in op.path_params:
        name = p["name"]
        if ids and name in ids:
            value = str(ids[name])
        elif name in extra:
            value = extra[name]
        elif name in op.uuid_params:
            kind = kind_for_route(op, name)
            value = str(world[kind]) if kind in world else str(uuid.uuid4())
        else:
            schema = resolve(op.doc, p.get("schema"))
            value = str(sample_value(schema, name, world))
        path = path.replace("{" + name + "}", value)
    return path


def required_query(op: Operation, world: World) -> dict[str, Any]:
    return {
        p["name"]: sample_value(resolve(op.doc, p.get("schema")), p["name"], world)
        for p in op.query_params
        if p.get("required")
    }


def body_uuid_fields(op: Operation) -> Iterator[tuple[str, bool]]:
    """(field, is_list) for every top-level uuid-referencing field of the request body."""
    for name, sub in (op.body_schema or {}).get("properties", {}).items():
        if sub.get("readOnly"):
            continue
        if sub.get("format") == "uuid" or name in FIELD_KINDS and sub.get("type") != "array":
            if name in FIELD_KINDS:
                yield name, False
        elif sub.get("type") == "array" and (
            sub.get("items", {}).get("format") == "uuid" or name in FIELD_KINDS
        ):
            yield name, True


def all_scopes_but(needed: list[str]) -> list[str]:
    return [s for s in TENANT_SCOPES if s not in needed]
