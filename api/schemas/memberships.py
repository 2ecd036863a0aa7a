"""Roster schemas: a membership of a location or client, its bulk rows and report."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from api.fields import Date, TrimmedText
from api.pagination import PageArgs
from api.schemas.assignments import bounded_date
from api.schemas.directory import BulkCountsSchema

DATES_DOC = "Inclusive, in the organization's time zone; null = open."


def _date(description: str) -> Date:
    return Date(allow_none=True, validate=bounded_date, metadata={"description": description})


class MembershipSchema(Schema):
    id = fields.UUID()
    employee_id = fields.UUID()
    employee_name = fields.String(allow_none=True)
    location_id = fields.UUID(allow_none=True)
    client_id = fields.UUID(allow_none=True)
    starts_on = Date(allow_none=True)
    ends_on = Date(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    job_id = fields.UUID(
        allow_none=True,
        metadata={"description": "The requirement fan-out this change started (poll /jobs/{id})"},
    )


class _Dates(Schema):
    starts_on = _date(f"First day on the roster. {DATES_DOC}")
    ends_on = _date(f"Last day on the roster. {DATES_DOC}")

    @validates_schema
    def _ordered(self, data: dict[str, Any], **_: Any) -> None:
        starts, ends = data.get("starts_on"), data.get("ends_on")
        if starts is not None and ends is not None and ends < starts:
            raise ValidationError("Must not be before starts_on.", "ends_on")


class MembershipCreateSchema(_Dates):
    employee_id = fields.UUID(required=True)


class MembershipPatchSchema(_Dates):
    pass


class MembershipQuerySchema(PageArgs):
    on = Date(
        validate=bounded_date,
        metadata={"description": "Only memberships that count on this date (YYYY-MM-DD)."},
    )


class MembershipBulkRowSchema(_Dates):
    """One roster row: the employee by `employee_id` or `employee_external_id`."""

    employee_id = fields.UUID()
    employee_external_id = TrimmedText(validate=validate.Length(min=1, max=200))

    @validates_schema
    def _one_employee(self, data: dict[str, Any], **_: Any) -> None:
        given = [f for f in ("employee_id", "employee_external_id") if data.get(f)]
        if len(given) != 1:
            raise ValidationError(
                "Give employee_id or employee_external_id (one of them).", "employee_id"
            )


class MembershipBulkRowResultSchema(Schema):
    index = fields.Integer(metadata={"description": "0-based position in `items` (or CSV rows)"})
    line = fields.Integer(metadata={"description": "CSV line number (the header is line 1)"})
    employee_id = fields.UUID()
    status = fields.String(metadata={"enum": ["created", "updated", "unchanged", "error"]})
    id = fields.UUID(metadata={"description": "The membership"})
    errors = fields.Dict(metadata={"description": "Field errors of a refused row"})
    message = fields.String()


class MembershipBulkReportSchema(Schema):
    counts = fields.Nested(BulkCountsSchema)
    job_id = fields.UUID(allow_none=True, metadata={"description": "The requirement fan-out"})
    rows = fields.List(fields.Nested(MembershipBulkRowResultSchema))


def membership_bulk_body() -> dict[str, Any]:
    row = {
        "type": "object",
        "description": "One member: employee_id or employee_external_id, starts_on, ends_on. "
        "Upserted by (employee, starts_on); an invalid row is reported, not refused.",
        "example": {"employee_external_id": "E-1001", "starts_on": "2026-04-01"},
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
                "example": "employee_external_id,starts_on,ends_on\nE-1001,2026-04-01,\n",
            },
        },
    }


def load_membership_rows(
    items: list[Any],
) -> tuple[list[tuple[int, dict[str, Any]]], dict[int, dict[str, Any]]]:
    """Validate each row on its own: (index, data) for good rows, index → field errors."""
    valid: list[tuple[int, dict[str, Any]]] = []
    errors: dict[int, Any] = {}
    schema = MembershipBulkRowSchema()
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            errors[index] = {"_schema": ["Each item must be an object."]}
        elif "_extra" in item:
            errors[index] = {"_schema": ["The row has more cells than the header."]}
        else:
            try:
                valid.append((index, schema.load(item)))
            except ValidationError as exc:
                errors[index] = exc.messages
    return valid, errors
