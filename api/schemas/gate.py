"""The gate check's query and answer (`GET /compliance/check`)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validates_schema

from api.fields import Date
from api.schemas.assignments import SatisfiedViaSchema, SourceSchema, bounded_date
from certifications.vocabulary import STATUSES


class GateArgs(Schema):
    employee_id = fields.UUID(metadata={"description": "The worker (or give asset_id)."})
    asset_id = fields.UUID(metadata={"description": "The equipment (or give employee_id)."})
    location_id = fields.UUID(
        metadata={"description": "The job site; its requirements apply even off its roster."}
    )
    on = Date(
        validate=bounded_date,
        metadata={"description": "The day to check (YYYY-MM-DD); default the org's today."},
    )

    @validates_schema
    def _one_subject(self, data: dict[str, Any], **_: Any) -> None:
        if ("employee_id" in data) == ("asset_id" in data):
            raise ValidationError("Give employee_id or asset_id (one of them).", "employee_id")


class GateRequirementSchema(Schema):
    certification_id = fields.UUID()
    certification_name = fields.String()
    sources = fields.List(fields.Nested(SourceSchema), metadata={"description": "Why required"})
    status = fields.String(
        metadata={"enum": list(STATUSES), "description": "The record's status on that date"}
    )
    expires_on = Date(allow_none=True)
    assignment_id = fields.UUID(allow_none=True, metadata={"description": "Null: no record"})
    exempt = fields.Boolean(metadata={"description": "Exempt on that date: does not block"})
    satisfied_via = fields.Nested(
        SatisfiedViaSchema,
        allow_none=True,
        metadata={
            "description": "Set when the status comes from the subject's record of an "
            "equivalent certification (`satisfied_by`), whose expiry `expires_on` then is; "
            "null otherwise"
        },
    )


class GateSchema(Schema):
    allowed = fields.Boolean(metadata={"description": "No requirement blocks"})
    on = Date()
    requirements = fields.List(fields.Nested(GateRequirementSchema))
    blocking = fields.List(
        fields.Nested(GateRequirementSchema),
        metadata={"description": "Missing, expired, revoked or upcoming on that date"},
    )
