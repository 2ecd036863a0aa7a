"""Directory schemas: one output, create, patch and bulk-row schema per kind, plus list filters.

Built from one table of field definitions so the five kinds cannot drift apart; each kind gets
its own named classes (`EmployeeCreateSchema`, ...) for the OpenAPI document.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, cast

from email_validator import EmailNotValidError, validate_email
from marshmallow import Schema, ValidationError, fields, validate

from api.fields import (
    EMAIL_CHECKS,
    Email,
    StrictBoolean,
    Text,
    TrimmedText,
    name_field,
    updated_since,
)
from api.openapi import OPTIONAL
from api.pagination import PageArgs, sort_field
from certifications.directory.service import KINDS

FieldFactory = Callable[..., fields.Field[Any]]
SORTABLE = ("name", "created_at", "updated_at")

# An unquoted ASCII local part (RFC 5322 dot-atom): what email_validator accepts as is.
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")


@functools.lru_cache(maxsize=10_000)
def _normalized_domain(domain: str) -> str | None:
    try:
        return validate_email(f"a@{domain}", **EMAIL_CHECKS).domain
    except EmailNotValidError:
        return None


class DirectoryEmail(Email):
    """`Email`, with the domain check cached: a 10,000-row import repeats a few domains.

    Only plain ASCII addresses take the shortcut (same answer and normalization as
    email_validator, see the tests); anything else goes through the full check.
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, str) and value.isascii() and len(value) <= 254 and "\x00" not in value:
            local, at, domain = value.rpartition("@")
            if at and len(local) <= 64 and _DOT_ATOM.match(local):
                normalized = _normalized_domain(domain)
                if normalized is not None:
                    return f"{local}@{normalized}"
        return super()._deserialize(value, attr, data, **kwargs)


def _external_id(**kw: Any) -> fields.Field[Any]:
    return TrimmedText(
        validate=validate.Length(min=1, max=200),
        metadata={
            "description": "Your system's id for this row; the key of bulk upserts. Leading "
            "and trailing whitespace is removed."
        },
        **kw,
    )


def _text(max_length: int) -> FieldFactory:
    return lambda **kw: Text(validate=validate.Length(max=max_length), **kw)


def _manager_id(**kw: Any) -> fields.Field[Any]:
    return fields.UUID(
        metadata={
            "description": "An employee of the org who hears of this one's reminders "
            "as `manager` (reminder plans); null: none."
        },
        **kw,
    )


def _manager_ids(**kw: Any) -> fields.Field[Any]:
    return fields.List(
        fields.UUID(),
        validate=validate.Length(max=50),
        metadata={
            "description": "Employees of the org who hear of this location's reminders "
            "as `location_managers` (reminder plans)."
        },
        **kw,
    )


MAX_ROLES = 50


class OneOrMany(fields.Field[list[Any]]):
    """One value or a list of values (at most `MAX_ROLES`); in a CSV cell, values separated by
    `|`. Each value is checked by `item` (a UUID or a bounded text)."""

    def __init__(self, item: fields.Field[Any], *, split: bool = False, **kw: Any) -> None:
        super().__init__(**kw)
        self.item = item
        self.split = split

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[Any]:
        if isinstance(value, str):
            values: list[Any] = value.split("|") if self.split else [value]
        elif isinstance(value, list):
            values = value
        else:
            raise ValidationError("A value or a list of values.")
        if len(values) > MAX_ROLES:
            raise ValidationError(f"At most {MAX_ROLES} values.")
        out = []
        for v in values:
            v = v.strip() if isinstance(v, str) else v
            if v == "":
                raise ValidationError("Empty value.")
            out.append(self.item.deserialize(v))
        return out


def _role_text() -> fields.Field[Any]:
    return TrimmedText(validate=validate.Length(min=1, max=200))


def _roles(item: Callable[[], fields.Field[Any]], description: str) -> FieldFactory:
    def make(*, csv: bool = False, **kw: Any) -> fields.Field[Any]:
        items = {"type": "string", "format": "uuid"} if item is fields.UUID else {"type": "string"}
        # Documented as its list form (one value alone is accepted too): typed for generators.
        metadata = {
            "description": description,
            "type": "array",
            "items": items,
            "maxItems": MAX_ROLES,
        }
        return OneOrMany(item(), split=csv, metadata=metadata, **kw)

    return make


_ROLE_FIELDS: dict[str, FieldFactory] = {
    "role_ids": _roles(
        fields.UUID,
        "Every role of the employee, first one first (CSV: ids separated by |). Or name them "
        "by role_external_id or role_name; give roles one way per request.",
    ),
    "role_external_id": _roles(
        _role_text, "The roles by their external ids: one, or a list (CSV: separated by |)."
    ),
    "role_name": _roles(
        _role_text,
        "The roles by name (ignoring case): one, or a list (CSV: separated by |).",
    ),
}

# Optional, nullable fields per kind (name, external_id and active are common to all kinds).
_EXTRA: dict[str, dict[str, FieldFactory]] = {
    "roles": {},
    "employees": {
        "email": DirectoryEmail,
        "role_id": lambda **kw: fields.UUID(
            metadata={"deprecated": True, "description": "Deprecated: the first of role_ids."},
            **kw,
        ),
        "user_sub": _text(200),
        "manager_id": _manager_id,
    },
    "assets": {
        "serial_number": _text(200),
        "category": lambda **kw: TrimmedText(
            validate=validate.Length(max=200),
            metadata={"description": 'Free text ("Crane"); requirements match it ignoring case.'},
            **kw,
        ),
        "location_id": lambda **kw: fields.UUID(
            metadata={"description": "The job site where the asset is."}, **kw
        ),
        "custodian_id": lambda **kw: fields.UUID(
            metadata={"description": "The employee in charge of the asset."}, **kw
        ),
    },
    "clients": {"contact_email": DirectoryEmail},
    "locations": {"address": _text(1000), "client_id": fields.UUID, "manager_ids": _manager_ids},
}
# Set per row (create, patch), not by bulk upserts: they name other rows of the org by id.
_SINGLE_ROW_ONLY = ("manager_id", "manager_ids")


def _writable(plural: str, mode: str) -> dict[str, fields.Field[Any]]:
    """Fresh field objects for `mode`: create, patch, bulk (a JSON row) or csv (a CSV row)."""
    bulk = mode in ("bulk", "csv")
    spec: dict[str, fields.Field[Any]] = {
        "name": name_field(required=mode != "patch"),
        "external_id": _external_id(required=bulk, allow_none=not bulk),
        # CSV cells are text: true/false, yes/no, 1/0 there; JSON takes only true/false.
        "active": fields.Boolean() if mode == "csv" else StrictBoolean(),
    }
    for field, factory in _EXTRA[plural].items():
        if not (bulk and field in _SINGLE_ROW_ONLY):
            spec[field] = factory(allow_none=True)
    if plural == "employees":
        for field, factory in _ROLE_FIELDS.items():
            spec[field] = factory(allow_none=True, csv=mode == "csv")
    return spec


def _uuid_text(value: Any) -> str | None:
    return None if value is None else str(value)


def _output(plural: str) -> dict[str, fields.Field[Any]]:
    spec: dict[str, fields.Field[Any]] = {"id": fields.UUID()}
    for name in ("name", "external_id", "active", *_EXTRA[plural]):
        if name == "active":
            spec[name] = fields.Boolean()
        elif name == "manager_ids":
            spec[name] = fields.List(fields.UUID())
        elif name == "role_id":
            spec[name] = fields.UUID(
                allow_none=True,
                metadata={"deprecated": True, "description": "Deprecated: the first of role_ids."},
            )
        elif name.endswith("_id") and name != "external_id":
            spec[name] = fields.UUID(allow_none=True)
        else:
            spec[name] = fields.String(allow_none=True)
    if plural == "employees":
        spec["role_ids"] = fields.List(
            fields.UUID(), metadata={"description": "Every role of the employee, first first."}
        )
    spec |= {"created_at": fields.DateTime(), "updated_at": fields.DateTime()}
    if plural == "employees":
        spec["job_id"] = fields.Function(
            lambda item: _uuid_text(getattr(item, "job_id", None)),
            allow_none=True,
            metadata={
                "type": "string",
                "format": "uuid",
                "nullable": True,
                "description": "The role fan-out job this create or change started (poll GET "
                "/jobs/{id}); null when it started none, and always null on GET.",
            },
        )
    return spec


def _build(plural: str, suffix: str, spec: dict[str, fields.Field[Any]]) -> type[Schema]:
    title = KINDS[plural].name.capitalize()
    return Schema.from_dict(spec, name=f"{title}{suffix}Schema")


SCHEMAS: dict[str, dict[str, type[Schema]]] = {
    plural: {
        "out": _build(plural, "", _output(plural)),
        "create": _build(plural, "Create", _writable(plural, "create")),
        "patch": _build(plural, "Patch", _writable(plural, "patch")),
        "bulk": _build(plural, "BulkRow", _writable(plural, "bulk")),
        "csv": _build(plural, "CsvRow", _writable(plural, "csv")),
    }
    for plural in KINDS
}


class DirectoryQuerySchema(PageArgs):
    active = fields.Boolean(metadata={"description": "Only active (true) or inactive (false)."})
    external_id = fields.List(
        TrimmedText(validate=validate.Length(min=1, max=200)),
        validate=validate.Length(min=1, max=100),
        metadata={
            "description": "Only rows with one of these external ids: repeat the parameter or "
            "separate values with commas (at most 100)."
        },
    )
    updated_since = updated_since()
    q = Text(
        validate=validate.Length(min=1, max=200),
        metadata={"description": "Case-insensitive search in the name."},
    )
    sort = sort_field(SORTABLE, "name")


class EmployeeQuerySchema(DirectoryQuerySchema):
    role_id = fields.UUID(metadata={"description": "Employees holding this role (any of theirs)."})


class AssetQuerySchema(DirectoryQuerySchema):
    location_id = fields.UUID()
    category = Text(
        validate=validate.Length(min=1, max=200),
        metadata={"description": "Assets of this category (ignoring case)."},
    )


class LocationQuerySchema(DirectoryQuerySchema):
    client_id = fields.UUID()


QUERY_SCHEMAS: dict[str, type[Schema]] = {
    "employees": EmployeeQuerySchema,
    "assets": AssetQuerySchema,
    "locations": LocationQuerySchema,
}


class BulkArgsSchema(Schema):
    atomic = fields.Boolean(
        load_default=False,
        metadata={"description": "All or nothing: any invalid row answers 422, nothing written."},
    )


class BulkRowResultSchema(Schema):
    """One row's outcome: `index` and `status` always, the rest when they apply."""

    index = fields.Integer(metadata={"description": "0-based position in `items` (or CSV rows)"})
    line = fields.Integer(
        metadata={"description": "CSV line number (the header is line 1)", OPTIONAL: True}
    )
    external_id = fields.String(
        metadata={"description": "The row's key, when it had one", OPTIONAL: True}
    )
    status = fields.String(metadata={"enum": ["created", "updated", "unchanged", "error"]})
    id = fields.UUID(metadata={"description": "The row written", OPTIONAL: True})
    errors = fields.Dict(metadata={"description": "Field errors of a refused row", OPTIONAL: True})
    message = fields.String(metadata={"description": "Why the row was refused", OPTIONAL: True})


class BulkCountsSchema(Schema):
    created = fields.Integer()
    updated = fields.Integer()
    unchanged = fields.Integer()
    error = fields.Integer()


class BulkReportSchema(Schema):
    counts = fields.Nested(BulkCountsSchema)
    job_id = fields.UUID(
        allow_none=True, metadata={"description": "Role fan-out job started by employee changes"}
    )
    rows = fields.List(fields.Nested(BulkRowResultSchema))


def bulk_row_component(plural: str) -> str:
    """The OpenAPI component name of one row of `POST /{plural}/bulk` (registered by the app)."""
    return f"{KINDS[plural].name.capitalize()}BulkRow"


BULK_ROW_SCHEMAS: dict[str, type[Schema]] = {
    bulk_row_component(plural): SCHEMAS[plural]["bulk"] for plural in KINDS
}


def bulk_request_body(plural: str) -> dict[str, Any]:
    """The OpenAPI requestBody of `POST /{kind}/bulk`: JSON `{"items": [...]}` or a CSV file.

    Each row is documented by its schema (`<Kind>BulkRow`); a row that breaks it does not make
    the request invalid though: it is reported as that row's error (unless `atomic=true`).
    """
    kind = KINDS[plural].name
    columns = ",".join(_writable(plural, "bulk"))
    empty_cells = "," * (columns.count(",") - 2)  # after name, external_id, active
    items = {
        "type": "array",
        "maxItems": 10_000,
        "description": (
            f"The {plural}, each keyed by `external_id`. Omitted fields keep their stored "
            "value. An invalid row is reported in the answer, not refused."
        ),
        "items": {"$ref": f"#/components/schemas/{bulk_row_component(plural)}"},
    }
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["items"],
                    "additionalProperties": False,
                    "properties": {"items": items},
                },
                "example": {"items": [{"external_id": "X-1001", "name": f"Example {kind}"}]},
            },
            "text/csv": {
                "schema": {"type": "string", "format": "binary"},
                "example": f"{columns}\nExample {kind},X-1001,true{empty_cells}\n",
            },
        },
    }


def load_rows(
    plural: str, items: list[Any], *, csv: bool = False
) -> tuple[list[tuple[int, dict[str, Any]]], dict[int, dict[str, list[str]]]]:
    """Validate each row on its own: (index, data) for good rows, index → field errors."""
    errors: dict[int, dict[str, list[str]]] = {}
    indexes: list[int] = []
    candidates: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            errors[index] = {"_schema": ["Each item must be an object."]}
        elif "_extra" in item:
            errors[index] = {"_schema": ["The row has more cells than the header."]}
        else:
            indexes.append(index)
            candidates.append(item)
    # One many=True load is about twice as fast as a load per row; its errors are per position.
    try:
        loaded = SCHEMAS[plural]["csv" if csv else "bulk"]().load(candidates, many=True)
        failed: dict[int, Any] = {}
    except ValidationError as exc:
        # many=True: the messages are keyed by position (marshmallow types them as any shape).
        loaded, failed = exc.valid_data, cast(dict[int, Any], exc.messages)
    valid = []
    for position, index in enumerate(indexes):
        if position in failed:
            errors[index] = failed[position]
        else:
            valid.append((index, loaded[position]))
    return valid, dict(sorted(errors.items()))


class BulkJsonSchema(Schema):
    """The JSON envelope of a bulk request; rows are validated one by one afterwards."""

    items = fields.List(fields.Raw(), required=True, validate=validate.Length(max=10_000))
