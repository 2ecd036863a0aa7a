"""Assignment schemas: create, patch, renew, revoke, form submissions, history, list filters."""

from __future__ import annotations

from datetime import date
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from api.fields import Date, FieldOptions, Text, name_field
from api.pagination import PageArgs
from certifications.vocabulary import ASSIGNMENT_SOURCES, STATUSES, SUBJECT_KINDS

MIN_DATE, MAX_DATE = date(1900, 1, 1), date(2999, 12, 31)


def _bounded_date(value: date | None) -> None:
    if value is not None and not MIN_DATE <= value <= MAX_DATE:
        raise ValidationError(f"Must be between {MIN_DATE} and {MAX_DATE}.")


def _date(**kw: Any) -> Date:
    return Date(allow_none=True, validate=_bounded_date, **kw)


NOTES: FieldOptions = {"allow_none": True, "validate": validate.Length(max=10_000)}


class AssignmentSchema(Schema):
    id = fields.UUID()
    certification_id = fields.UUID()
    subject_type = fields.String(metadata={"enum": list(SUBJECT_KINDS)})
    subject_id = fields.UUID()
    source = fields.String(metadata={"enum": list(ASSIGNMENT_SOURCES)})
    required = fields.Boolean(
        metadata={"description": "False once a recorded role assignment's role no longer applies"}
    )
    cycle = fields.Integer()
    issued_on = Date(allow_none=True)
    effective_on = Date(allow_none=True)
    expires_on = Date(allow_none=True)
    expires_explicit = fields.Boolean(
        metadata={"description": "expires_on was given; false = computed from the validity"}
    )
    notes = fields.String(allow_none=True)
    status = fields.String(metadata={"enum": list(STATUSES)})
    status_changed_at = fields.DateTime()
    form_accepted_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)
    revoked_reason = fields.String(allow_none=True)
    revoked_by = fields.String(allow_none=True)
    created_by = fields.String(allow_none=True)
    pending_submission = fields.UUID(
        attribute="pending_submission_id",
        allow_none=True,
        metadata={"description": "The submission waiting for review, if any"},
    )
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class _DatesSchema(Schema):
    issued_on = _date(metadata={"description": "Date the certificate was issued"})
    effective_on = _date(metadata={"description": "Defaults to issued_on"})
    expires_on = _date(metadata={"description": "Defaults to effective_on + validity"})
    notes = Text(**NOTES)


class AssignmentCreateSchema(_DatesSchema):
    certification_id = fields.UUID(required=True)
    subject_type = Text(required=True, validate=validate.OneOf(SUBJECT_KINDS))
    subject_id = fields.UUID(required=True)


class AssignmentPatchSchema(_DatesSchema):
    @validates_schema
    def _not_empty(self, data: dict[str, Any], **_kw: Any) -> None:
        if not data:
            raise ValidationError(
                "Give at least one of: issued_on, effective_on, expires_on, notes."
            )


class RenewSchema(_DatesSchema):
    issued_on = _date(metadata={"description": "Defaults to today in the org's time zone"})


class RevokeSchema(Schema):
    reason = name_field(max_length=2000, required=True)


class FormSubmissionCreateSchema(Schema):
    answers = fields.Dict(
        keys=Text(validate=validate.Length(min=1, max=200)),
        required=True,
        validate=validate.Length(max=200),
        metadata={"example": {"score": 92, "passed": True}},
    )


class FormSubmissionSchema(Schema):
    id = fields.UUID()
    assignment_id = fields.UUID()
    cycle = fields.Integer()
    answers = fields.Dict()
    status = fields.String(metadata={"enum": ["accepted"]})
    submitted_by = fields.String(allow_none=True)
    created_at = fields.DateTime()


class CycleSchema(Schema):
    cycle = fields.Integer()
    issued_on = Date(allow_none=True)
    effective_on = Date(allow_none=True)
    expires_on = Date(allow_none=True)
    notes = fields.String(allow_none=True)
    recorded_by = fields.String(
        allow_none=True, metadata={"description": "Who recorded this cycle (created or renewed)"}
    )
    closed_at = fields.DateTime(allow_none=True)
    current = fields.Boolean()


class StatusEventSchema(Schema):
    id = fields.UUID()
    cycle = fields.Integer()
    from_status = fields.String(allow_none=True)
    to_status = fields.String()
    on_date = Date()
    created_at = fields.DateTime()


class HistorySchema(Schema):
    assignment_id = fields.UUID()
    cycles = fields.List(fields.Nested(CycleSchema))
    status_events = fields.List(fields.Nested(StatusEventSchema))
    form_submissions = fields.List(fields.Nested(FormSubmissionSchema))


class AssignmentListArgs(PageArgs):
    certification_id = fields.UUID()
    subject_type = Text(validate=validate.OneOf(SUBJECT_KINDS))
    subject_id = fields.UUID()
    status = Text(validate=validate.OneOf(STATUSES))
    source = Text(validate=validate.OneOf(ASSIGNMENT_SOURCES))
    required = fields.Boolean()
