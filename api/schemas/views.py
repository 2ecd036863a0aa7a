"""Schemas of the compliance views, the summary and the renewal forecast."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate
from webargs.fields import DelimitedList

from api.fields import Date, Integer, Text
from api.openapi import OPTIONAL
from api.pagination import PageArgs, page_schema
from api.schemas.assignments import SatisfiedViaSchema
from certifications.vocabulary import CERTIFICATION_TYPES, STATUSES

# --- query arguments ---------------------------------------------------------------------------


AS_OF_DOC = (
    "As the figures stood at the end of this past day in the organization's time zone (read "
    "from history: the cycle then current, the requirements, exemptions and revocations as "
    "they stood). Unset or today: now. A future day is 422."
)


class SubjectViewArgs(PageArgs):
    status = DelimitedList(
        fields.String(validate=validate.OneOf(STATUSES)),
        validate=validate.Length(max=len(STATUSES)),
        metadata={"description": "Comma-separated statuses, e.g. `expired,missing`."},
    )
    certification_id = fields.UUID(load_default=None)
    group_id = fields.UUID(
        load_default=None,
        metadata={"description": "Certifications of this group and of all its subgroups."},
    )
    q = Text(
        load_default=None,
        validate=validate.Length(min=1, max=200),
        metadata={"description": "Case-insensitive substring of the subject's name."},
    )
    active = fields.Boolean(
        load_default=None,
        metadata={
            "description": "true: active subjects only, false: inactive ones (leavers) only. "
            "Unset: active subjects, or all of them with `include_inactive=true`."
        },
    )
    include_inactive = fields.Boolean(
        load_default=False,
        metadata={"description": "List inactive subjects (leavers) too; default false."},
    )
    exempt = fields.Boolean(
        load_default=None,
        metadata={
            "description": "true: only exempt assignments, false: only assignments inside "
            "compliance. Unset: both."
        },
    )
    on = Date(load_default=None, metadata={"description": AS_OF_DOC + " Not with `format=csv`."})
    format = fields.String(
        load_default="json",
        validate=validate.OneOf(("json", "csv")),
        metadata={
            "description": "`csv`: the whole filtered view as a streamed CSV file (as "
            "`Accept: text/csv`). Generated clients: call `GET /views/{kind}/export` instead, "
            "whose only answer is the CSV."
        },
    )


class EmployeeViewArgs(SubjectViewArgs):
    role_id = fields.UUID(load_default=None)
    client_id = fields.UUID(
        load_default=None,
        metadata={"description": "Only certifications that apply to this client."},
    )


class LocationViewArgs(SubjectViewArgs):
    client_id = fields.UUID(
        load_default=None, metadata={"description": "Only job locations of this client."}
    )


class ClientViewArgs(SubjectViewArgs):
    client_id = fields.UUID(load_default=None, metadata={"description": "Only this client."})


class IncludeInactiveArgs(Schema):
    include_inactive = fields.Boolean(
        load_default=False,
        metadata={
            "description": "Count assignments of inactive subjects (leavers) too; default false."
        },
    )


class AsOfArgs(IncludeInactiveArgs):
    on = Date(load_default=None, metadata={"description": AS_OF_DOC})


class ForecastArgs(IncludeInactiveArgs):
    months = Integer(
        load_default=12,
        validate=validate.Range(min=1, max=36),
        metadata={"description": "Calendar months, the current one first (1 to 36)."},
    )


# --- responses ---------------------------------------------------------------------------------


# A count per status, one field per status of the vocabulary.
StatusCountsSchema = Schema.from_dict(
    {status: fields.Integer() for status in STATUSES}, name="StatusCountsSchema"
)


class SubjectCertificationSchema(Schema):
    certification_id = fields.UUID()
    name = fields.String()
    status = fields.String(metadata={"enum": list(STATUSES)})
    required = fields.Boolean()
    issued_on = Date(allow_none=True)
    effective_on = Date(allow_none=True)
    expires_on = Date(allow_none=True)
    assignment_id = fields.UUID()
    exempt = fields.Boolean(metadata={"description": "Exempt: outside compliance"})


_SUMMARY_FIELDS: dict[str, fields.Field[Any]] = {s: fields.Integer() for s in STATUSES}
_SUMMARY_FIELDS["exempt"] = fields.Integer(
    metadata={"description": "Exempt (not in the status counts)"}
)
SubjectSummarySchema = Schema.from_dict(
    _SUMMARY_FIELDS,
    name="SubjectSummarySchema",
)


class WorkforceSchema(Schema):
    members = fields.Integer(metadata={"description": "Active members on the roster today"})
    summary = fields.Nested(
        SubjectSummarySchema,
        metadata={
            "description": "Count per status of the certifications required of the members "
            "there (exempt ones under `exempt` only)."
        },
    )


class SubjectViewSchema(Schema):
    id = fields.UUID()
    name = fields.String()
    external_id = fields.String(allow_none=True)
    active = fields.Boolean()
    email = fields.String(
        allow_none=True, metadata={"description": "Employees only.", OPTIONAL: True}
    )
    role_id = fields.UUID(
        allow_none=True, metadata={"description": "Employees only.", OPTIONAL: True}
    )
    client_id = fields.UUID(
        allow_none=True, metadata={"description": "Job locations only.", OPTIONAL: True}
    )
    certifications = fields.List(fields.Nested(SubjectCertificationSchema))
    workforce = fields.Nested(
        "WorkforceSchema",
        metadata={
            "description": "Clients and job locations only: their members on the day (as of "
            "a past day: that day's roster, statuses from history).",
            OPTIONAL: True,
        },
    )
    summary = fields.Nested(
        SubjectSummarySchema,
        metadata={
            "description": "Count per status over the subject's applicable certifications "
            "inside compliance; exempt ones count under `exempt` only."
        },
    )


SubjectViewPageSchema = page_schema(SubjectViewSchema)


class ComplianceFiguresSchema(Schema):
    counts = fields.Nested(StatusCountsSchema)
    required = fields.Integer(metadata={"description": "Required assignments"})
    compliant = fields.Integer(
        metadata={"description": "Required assignments that are valid or expire soon"}
    )
    compliance = fields.Float(
        allow_none=True,
        metadata={"description": "compliant / required, 0 to 1 (null without requirements)"},
    )
    exempt = fields.Integer(
        metadata={
            "description": "Exempt assignments: outside counts, required, compliant and ratio"
        }
    )


class CertificationComplianceSchema(ComplianceFiguresSchema):
    certification_id = fields.UUID()
    name = fields.String()
    type = fields.String(metadata={"enum": list(CERTIFICATION_TYPES)})


class GroupNodeSchema(ComplianceFiguresSchema):
    id = fields.UUID()
    name = fields.String()
    parent_id = fields.UUID(allow_none=True)
    certifications = fields.List(fields.Nested(CertificationComplianceSchema))
    subtree = fields.Nested(
        ComplianceFiguresSchema, metadata={"description": "This group and its subgroups"}
    )
    children = fields.List(fields.Nested(lambda: GroupNodeSchema()))


class GroupTreeSchema(Schema):
    groups = fields.List(fields.Nested(GroupNodeSchema))
    ungrouped = fields.List(fields.Nested(CertificationComplianceSchema))


class GroupComplianceSchema(ComplianceFiguresSchema):
    group_id = fields.UUID()
    name = fields.String()
    parent_id = fields.UUID(allow_none=True)


class ComplianceSummarySchema(Schema):
    totals = fields.Nested(ComplianceFiguresSchema)
    certifications = fields.List(fields.Nested(CertificationComplianceSchema))
    groups = fields.List(
        fields.Nested(GroupComplianceSchema),
        metadata={"description": "Each group with its subgroups (a certification counted once)"},
    )


class ForecastMonthSchema(Schema):
    month = fields.String(metadata={"example": "2026-12"})
    renewals = fields.Integer()
    cost = fields.String(metadata={"format": "decimal", "example": "129.50"})


class ForecastTotalSchema(Schema):
    renewals = fields.Integer()
    cost = fields.String(metadata={"format": "decimal", "example": "1290.00"})


class ForecastSchema(Schema):
    today = Date(metadata={"description": "Today in the organization's time zone"})
    from_ = Date(data_key="from", attribute="from")
    to = Date()
    months = fields.List(fields.Nested(ForecastMonthSchema))
    total = fields.Nested(ForecastTotalSchema)


class MembersViewArgs(PageArgs):
    status = DelimitedList(
        fields.String(validate=validate.OneOf(STATUSES)),
        validate=validate.Length(max=len(STATUSES)),
        metadata={
            "description": "Comma-separated statuses: members with such an entry, those entries."
        },
    )
    on = Date(metadata={"description": "The day (YYYY-MM-DD); default the org's today."})
    format = fields.String(
        load_default="json",
        validate=validate.OneOf(("json", "csv")),
        metadata={"description": "`csv`: the whole filtered view as a streamed CSV file."},
    )


class MemberEntrySchema(Schema):
    certification_id = fields.UUID()
    certification_name = fields.String()
    assignment_id = fields.UUID(allow_none=True, metadata={"description": "Null: no record"})
    status = fields.String(metadata={"enum": list(STATUSES)})
    expires_on = Date(allow_none=True)
    exempt = fields.Boolean()
    satisfied_via = fields.Nested(
        SatisfiedViaSchema,
        allow_none=True,
        metadata={
            "description": "Set when the status comes from the member's record of an "
            "equivalent certification (`satisfied_by`), whose expiry `expires_on` then is; "
            "null otherwise"
        },
    )


class MemberRowSchema(Schema):
    employee_id = fields.UUID()
    name = fields.String()
    external_id = fields.String(allow_none=True)
    certifications = fields.List(
        fields.Nested(MemberEntrySchema),
        metadata={"description": "What the site (client) requires of its members, with status"},
    )
    summary = fields.Nested(SubjectSummarySchema)


MembersViewPageSchema = page_schema(MemberRowSchema)
