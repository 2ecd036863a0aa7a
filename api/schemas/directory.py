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

from api.fields import EMAIL_CHECKS, Email, StrictBoolean, Text, TrimmedText, name_field
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


# Optional, nullable fields per kind (name, external_id and active are common to all kinds).
_EXTRA: dict[str, dict[str, FieldFactory]] = {
    "roles": {},
    "employees": {"email": DirectoryEmail, "role_id": fields.UUID, "user_sub": _text(200)},
    "assets": {"serial_number": _text(200)},
    "clients": {"contact_email": DirectoryEmail},
    "locations": {"address": _text(1000), "client_id": fields.UUID},
}


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
        spec[field] = factory(allow_none=True)
    return spec


def _uuid_text(value: Any) -> str | None:
    return None if value is None else str(value)


def _output(plural: str) -> dict[str, fields.Field[Any]]:
    spec: dict[str, fields.Field[Any]] = {"id": fields.UUID()}
    for name in ("name", "external_id", "active", *_EXTRA[plural]):
        if name == "active":
            spec[name] = fields.Boolean()
        elif name.endswith("_id") and name != "external_id":
            spec[name] = fields.UUID(allow_none=True)
        else:
            spec[name] = fields.String(allow_none=True)
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
    updated_since = fields.AwareDateTime(
        metadata={
            "description": "Only rows changed at or after this instant (ISO 8601 with a time "
            "zone), e.g. to sync changes since a previous run."
        },
    )
    q = Text(
        validate=validate.Length(min=1, max=200),
        metadata={"description": "Case-insensitive search in the name."},
    )
    sort = sort_field(SORTABLE, "name")


class EmployeeQuerySchema(DirectoryQuerySchema):
    role_id = fields.UUID()


class LocationQuerySchema(DirectoryQuerySchema):
    client_id = fields.UUID()


QUERY_SCHEMAS: dict[str, type[Schema]] = {
    "employees": EmployeeQuerySchema,
    "locations": LocationQuerySchema,
}


class BulkArgsSchema(Schema):
    atomic = fields.Boolean(
        load_default=False,
        metadata={"description": "All or nothing: any invalid row answers 422, nothing written."},
    )


class BulkRowResultSchema(Schema):
    index = fields.Integer(metadata={"description": "0-based position in `items` (or CSV rows)"})
    line = fields.Integer(metadata={"description": "CSV line number (the header is line 1)"})
    external_id = fields.String()
    status = fields.String(metadata={"enum": ["created", "updated", "unchanged", "error"]})
    id = fields.UUID()
    errors = fields.Dict(metadata={"description": "Field errors of a refused row"})
    message = fields.String()


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


def bulk_request_body(plural: str) -> dict[str, Any]:
    """The OpenAPI requestBody of `POST /{kind}/bulk`: JSON `{"items": [...]}` or a CSV file.

    Rows are documented as plain objects on purpose: a row that breaks the row schema does not
    make the request invalid, it is reported as that row's error (unless `atomic=true`).
    """
    kind = KINDS[plural].name
    columns = ",".join(_writable(plural, "bulk"))
    row = {
        "type": "object",
        "description": (
            f"One {kind}, validated on its own against `{kind.capitalize()}Create` plus a "
            f"required `external_id`: fields {columns.replace(',', ', ')}. Omitted fields keep "
            "their stored value. An invalid row is reported in the answer, not refused."
        ),
        "example": {"external_id": "X-1001", "name": "Example"},
    }
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["items"],
                    "additionalProperties": False,
                    "properties": {"items": {"type": "array", "maxItems": 10_000, "items": row}},
                }
            },
            "text/csv": {
                "schema": {"type": "string"},
                "example": f"{columns}\n",
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
