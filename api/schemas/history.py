"""Schemas of compliance over time: the daily trend and the audit pack."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.fields import Date
from api.schemas.views import StatusCountsSchema

MAX_TREND_DAYS = 366


class TrendArgs(Schema):
    from_ = Date(
        data_key="from",
        load_default=None,
        metadata={"description": "First day (default: 29 days before `to`)."},
    )
    to = Date(load_default=None, metadata={"description": "Last day (default: today)."})
    certification_id = fields.UUID(load_default=None)
    group_id = fields.UUID(
        load_default=None, metadata={"description": "Certifications of this group and below."}
    )
    location_id = fields.UUID(
        load_default=None,
        metadata={
            "description": "Only this job location's subjects (computed from history per day, "
            "not from the snapshots)."
        },
    )


class TrendPointSchema(Schema):
    day = Date()
    counts = fields.Nested(StatusCountsSchema)
    exempt = fields.Integer()
    required = fields.Integer()
    compliant = fields.Integer()
    compliance = fields.Float(allow_none=True)


class TrendSchema(Schema):
    from_ = Date(data_key="from", attribute="from")
    to = Date()
    series = fields.List(
        fields.Nested(TrendPointSchema),
        metadata={"description": "One point per day with a snapshot, oldest first."},
    )


class AuditPackArgs(Schema):
    location_id = fields.UUID(load_default=None)
    client_id = fields.UUID(load_default=None)
    group_id = fields.UUID(load_default=None)
    on = Date(load_default=None, metadata={"description": "The pack's day (default: today)."})
    format = fields.String(
        load_default="pdf",
        validate=validate.OneOf(("pdf", "xlsx")),
        metadata={"description": "`pdf` (default) or `xlsx` (the same data as a workbook)."},
    )


class AuditPackJobSchema(Schema):
    job_id = fields.UUID()
    status_url = fields.String(metadata={"description": "Poll it; `result.download` when done."})
