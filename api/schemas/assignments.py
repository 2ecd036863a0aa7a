"""Assignment schemas: create, patch, renew, revoke, form submissions, history, list filters."""

from __future__ import annotations

from datetime import date
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from api.fields import Date, FieldOptions, Text, any_of, name_field, updated_since
from api.openapi import OPTIONAL
from api.pagination import PageArgs
from certifications.assignments.bulk import ACTIONS as BULK_ACTIONS
from certifications.assignments.bulk import MAX_SUBJECTS as MAX_BULK_SUBJECTS
from certifications.assignments.bulk import ROW_STATUSES as BULK_ROW_STATUSES
from certifications.vocabulary import ASSIGNMENT_SOURCES, STATUSES, SUBJECT_KINDS

MIN_DATE, MAX_DATE = date(1900, 1, 1), date(2999, 12, 31)


def bounded_date(value: date | None) -> None:
    if value is not None and not MIN_DATE <= value <= MAX_DATE:
        raise ValidationError(f"Must be between {MIN_DATE} and {MAX_DATE}.")


def _date(**kw: Any) -> Date:
    return Date(allow_none=True, validate=bounded_date, **kw)


NOTES: FieldOptions = {"allow_none": True, "validate": validate.Length(max=10_000)}


class ExemptionSchema(Schema):
    reason = fields.String(metadata={"description": "Why it is exempt"})
    until = Date(
        allow_none=True,
        metadata={"description": "Last exempt day (org's time zone); null = until lifted"},
    )
    by = fields.String(allow_none=True, metadata={"description": "Who exempted it"})
    at = fields.DateTime(metadata={"description": "When it was exempted"})


class SnoozeSchema(Schema):
    until = Date(metadata={"description": "Reminders resume on this day (org's time zone)"})
    reason = fields.String(allow_none=True, metadata={"description": "Why they are paused"})
    by = fields.String(allow_none=True, metadata={"description": "Who snoozed it"})
    at = fields.DateTime(metadata={"description": "When it was snoozed"})


class SatisfiedViaSchema(Schema):
    certification_id = fields.UUID(
        metadata={"description": "The equivalent certification (listed in `satisfied_by`)"}
    )
    certification_name = fields.String(metadata={"example": "OSHA 30-Hour Construction"})
    assignment_id = fields.UUID(
        metadata={"description": "The subject's assignment of it whose record gives the status"}
    )


class SourceSchema(Schema):
    kind = fields.String(
        metadata={"enum": ["role", "client", "location", "category", "all", "manual"]}
    )
    id = fields.UUID(
        allow_none=True, metadata={"description": "The role, client or location; null otherwise"}
    )
    name = fields.String(
        allow_none=True,
        metadata={"description": "Its name (the category; who assigned it by hand)"},
    )


class AssignmentSchema(Schema):
    id = fields.UUID()
    certification_id = fields.UUID()
    certification_name = fields.String(metadata={"example": "Excavation Permit"})
    subject_name = fields.String(metadata={"example": "Site North"})
    subject_type = fields.String(metadata={"enum": list(SUBJECT_KINDS)})
    subject_id = fields.UUID()
    source = fields.String(metadata={"enum": list(ASSIGNMENT_SOURCES)})
    required = fields.Boolean(
        metadata={"description": "False once no source requires a recorded rule-made assignment"}
    )
    sources = fields.List(
        fields.Nested(SourceSchema),
        metadata={
            "description": "Why it is required today: every source that applies (a role, a "
            "client's or site's membership, the asset's category or site, all clients or "
            "locations), and `manual` for one assigned by hand"
        },
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
    satisfied_via = fields.Nested(
        SatisfiedViaSchema,
        allow_none=True,
        metadata={
            "description": "Set when the status comes from the subject's record of an "
            "equivalent certification (the certification's `satisfied_by`) rather than this "
            "assignment's own record; null otherwise"
        },
    )
    exemption = fields.Nested(
        ExemptionSchema,
        allow_none=True,
        metadata={
            "description": "Set while exempt: outside compliance (no reminders nor tasks, "
            "counted under `exempt`), the status still computed; null when not exempt"
        },
    )
    snooze = fields.Nested(
        SnoozeSchema,
        allow_none=True,
        metadata={
            "description": "Set while its reminders are paused (POST /assignments/{id}/snooze); "
            "the status is unaffected; null when not snoozed"
        },
    )


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


class ExemptionRequestSchema(Schema):
    reason = name_field(max_length=2000, required=True)
    until = _date(
        load_default=None,
        metadata={
            "description": "Last exempt day (today or later); null or absent = until lifted",
            "example": "2027-06-30",
        },
    )


class SnoozeRequestSchema(Schema):
    until = Date(
        required=True,
        validate=bounded_date,
        metadata={
            "description": "Reminders resume on this day (after today)",
            "example": "2027-01-15",
        },
    )
    reason = Text(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=2000),
        metadata={"description": "Why they are paused", "example": "On leave until January"},
    )


class RevokeSchema(Schema):
    reason = name_field(max_length=2000, required=True)


class FormSubmissionCreateSchema(Schema):
    answers = fields.Dict(
        keys=Text(validate=validate.Length(min=1, max=200)),
        required=True,
        validate=validate.Length(max=200),
        metadata={"example": {"score": 92, "passed": True}},
    )


class NamesSchema(Schema):
    """What an entry's ids name (one query per page, never one per row)."""

    certification_name = fields.String(metadata={"example": "Excavation Permit"})
    subject_type = fields.String(metadata={"enum": list(SUBJECT_KINDS)})
    subject_id = fields.UUID()
    subject_name = fields.String(metadata={"example": "Site North"})


class FormSubmissionSchema(NamesSchema):
    id = fields.UUID()
    assignment_id = fields.UUID()
    cycle = fields.Integer()
    answers = fields.Dict()
    status = fields.String(metadata={"enum": ["accepted"]})
    submitted_by = fields.String(allow_none=True)
    created_at = fields.DateTime()


class CycleSchema(NamesSchema):
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


class StatusEventSchema(NamesSchema):
    id = fields.UUID()
    cycle = fields.Integer()
    from_status = fields.String(allow_none=True)
    to_status = fields.String()
    on_date = Date()
    created_at = fields.DateTime()


class HistorySchema(NamesSchema):
    assignment_id = fields.UUID()
    cycles = fields.List(fields.Nested(CycleSchema))
    status_events = fields.List(fields.Nested(StatusEventSchema))
    form_submissions = fields.List(fields.Nested(FormSubmissionSchema))


class AssignmentListArgs(PageArgs):
    certification_id = fields.UUID()
    subject_type = Text(validate=validate.OneOf(SUBJECT_KINDS))
    subject_id = fields.UUID()
    status = any_of(STATUSES)
    source = Text(validate=validate.OneOf(ASSIGNMENT_SOURCES))
    required = fields.Boolean()
    updated_since = updated_since("assignments")


class AssignmentBulkArgsSchema(Schema):
    atomic = fields.Boolean(
        load_default=False,
        metadata={
            "description": "All or nothing: any refused subject answers 422, nothing written."
        },
    )


class AssignmentBulkSchema(Schema):
    action = Text(
        required=True,
        validate=validate.OneOf(BULK_ACTIONS),
        metadata={"description": "assign, renew or revoke", "example": "renew"},
    )
    certification_id = fields.UUID(required=True)
    subject_type = Text(required=True, validate=validate.OneOf(SUBJECT_KINDS))
    subject_ids = fields.List(
        fields.UUID(),
        required=True,
        validate=validate.Length(min=1, max=MAX_BULK_SUBJECTS),
        metadata={"description": f"1 to {MAX_BULK_SUBJECTS} subjects; reported by position"},
    )
    issued_on = _date(metadata={"description": "assign: as POST /assignments; renew: today"})
    effective_on = _date(metadata={"description": "Defaults to issued_on"})
    expires_on = _date(metadata={"description": "Defaults to effective_on + validity"})
    reason = name_field(max_length=2000, metadata={"description": "Required to revoke"})
    notes = Text(**NOTES)

    @validates_schema
    def _consistent(self, data: dict[str, Any], **_kw: Any) -> None:
        if data.get("action") == "revoke" and not data.get("reason"):
            raise ValidationError("Required to revoke.", "reason")
        issued, effective = data.get("issued_on"), data.get("effective_on")
        if issued is not None and effective is not None and effective < issued:
            raise ValidationError("Must not be before issued_on.", "effective_on")


class AssignmentBulkRowSchema(Schema):
    """One subject's outcome: `index` and `status` always, the rest when they apply."""

    index = fields.Integer(metadata={"description": "0-based position in `subject_ids`"})
    subject_id = fields.UUID(metadata={OPTIONAL: True})
    assignment_id = fields.UUID(
        metadata={"description": "The assignment created or changed", OPTIONAL: True}
    )
    status = fields.String(metadata={"enum": list(BULK_ROW_STATUSES)})
    errors = fields.Dict(
        metadata={"description": "Why the subject was refused, by field", OPTIONAL: True}
    )
    message = fields.String(metadata={OPTIONAL: True})


class AssignmentBulkCountsSchema(Schema):
    created = fields.Integer()
    renewed = fields.Integer()
    revoked = fields.Integer()
    unchanged = fields.Integer()
    conflict = fields.Integer()
    error = fields.Integer()


class AssignmentBulkReportSchema(Schema):
    action = fields.String(metadata={"enum": list(BULK_ACTIONS)})
    counts = fields.Nested(AssignmentBulkCountsSchema)
    rows = fields.List(fields.Nested(AssignmentBulkRowSchema))
