"""Scheduled report schemas: what to send (kind, format, scope), when (cron in the org's time
zone) and to whom (recipients)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, post_load, validate

from api.fields import Email, StrictBoolean, Text
from api.openapi import OPTIONAL
from api.pagination import PageArgs
from certifications.reporting.models import REPORT_KINDS, RUN_STATUSES

MAX_RECIPIENTS = 20
KIND = {
    "validate": validate.OneOf(REPORT_KINDS),
    "metadata": {
        "description": "`audit-pack` (one location, client or group) or `summary` (compliance "
        "per certification, org-wide or over one scope).",
        "example": "audit-pack",
    },
}
FORMAT = {
    "validate": validate.OneOf(("pdf", "xlsx", "csv")),
    "metadata": {
        "description": "The attached file: `pdf` (default) or `xlsx` for an audit pack, "
        "`csv` for a summary.",
        "example": "pdf",
    },
}
CRON = {
    "validate": validate.Length(min=1, max=100),
    "metadata": {
        "description": "When to send, in the organization's time zone: five cron fields "
        "(minute hour day-of-month month day-of-week; Sunday is 0) or @daily, @weekly, "
        "@monthly, @yearly. At most hourly: the minute is one number.",
        "example": "0 7 * * 1",
    },
}
RECIPIENTS = {
    "validate": validate.Length(min=1, max=MAX_RECIPIENTS),
    "metadata": {
        "description": f"Email addresses (1 to {MAX_RECIPIENTS}); one email per run goes to "
        "all of them.",
        "example": ["hse@example.com"],
    },
}


class ScopeSchema(Schema):
    """One of the three ids (none: the whole organization, for a summary)."""

    location_id = fields.UUID(allow_none=True, metadata={OPTIONAL: True})
    client_id = fields.UUID(allow_none=True, metadata={OPTIONAL: True})
    group_id = fields.UUID(allow_none=True, metadata={OPTIONAL: True})


class ScopeViewSchema(Schema):
    """The scope as the schedule holds it: one id set, the others null (all null: the whole
    organization). Sent back as is, a PATCH keeps it."""

    location_id = fields.UUID(allow_none=True)
    client_id = fields.UUID(allow_none=True)
    group_id = fields.UUID(allow_none=True)


def _recipients(required: bool = False) -> fields.List[Any]:
    return fields.List(Email(), required=required, **RECIPIENTS)  # type: ignore[arg-type]


class _Recipients:
    @post_load
    def _dedupe(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if "recipients" in data:  # case-insensitively, first spelling kept
            seen: dict[str, str] = {}
            for address in data["recipients"]:
                seen.setdefault(address.lower(), address)
            data["recipients"] = list(seen.values())
        return data


class ReportScheduleCreateSchema(_Recipients, Schema):
    kind = Text(required=True, **KIND)  # type: ignore[arg-type]
    format = Text(**FORMAT)  # type: ignore[arg-type]
    scope = fields.Nested(ScopeSchema, load_default=dict)
    cron = Text(required=True, **CRON)  # type: ignore[arg-type]
    recipients = _recipients(required=True)
    enabled = StrictBoolean(load_default=True)


class ReportSchedulePatchSchema(_Recipients, Schema):
    kind = Text(**KIND)  # type: ignore[arg-type]
    format = Text(**FORMAT)  # type: ignore[arg-type]
    scope = fields.Nested(ScopeSchema)
    cron = Text(**CRON)  # type: ignore[arg-type]
    recipients = _recipients()
    enabled = StrictBoolean(metadata={"description": "false pauses the schedule."})


class ReportScheduleSchema(Schema):
    id = fields.UUID(dump_only=True)
    kind = fields.String(metadata={"enum": list(REPORT_KINDS)})
    format = fields.String(metadata={"enum": ["pdf", "xlsx", "csv"]})
    scope = fields.Nested(ScopeViewSchema, attribute="scope_view")
    cron = fields.String()
    timezone = fields.String(
        attribute="timezone_view",
        metadata={"description": "The organization's time zone, in which `cron` is read."},
    )
    recipients = fields.List(fields.String())
    enabled = fields.Boolean()
    next_run_at = fields.DateTime(
        allow_none=True, metadata={"description": "The next run (UTC); null while paused."}
    )
    last_run_at = fields.DateTime(
        allow_none=True, metadata={"description": "When the last run was recorded."}
    )
    last_run_status = fields.String(
        allow_none=True,
        metadata={
            "enum": [*RUN_STATUSES, None],
            "description": "How the last run's email stands (`sent`, `failed` after its "
            "retries, `pending`/`sending` while on its way).",
        },
    )
    created_by = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class ReportScheduleListArgs(PageArgs):
    kind = Text(validate=validate.OneOf(REPORT_KINDS))
