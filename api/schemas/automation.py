"""Schemas for notifications (the delivery log), renewal tasks and audit events."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from api.fields import Date, Text, any_of, updated_since
from api.pagination import PageArgs
from api.schemas.assignments import NamesSchema, bounded_date
from certifications.vocabulary import (
    CHANNELS,
    NOTIFICATION_STATUSES,
    RECIPIENT_SOURCES,
    RETRYABLE_NOTIFICATION_STATUSES,
    SETTABLE_TASK_STATUSES,
    SUBJECT_KINDS,
    TASK_STATUSES,
    TRIGGERS,
)


class NotificationSchema(NamesSchema):
    id = fields.UUID()
    assignment_id = fields.UUID()
    certification_id = fields.UUID()
    trigger = fields.String(metadata={"enum": list(TRIGGERS)})
    rule_key = fields.String(metadata={"example": "before_expiry:30"})
    cycle = fields.Integer()
    repetition = fields.Integer(
        metadata={"description": "Which repetition of a repeating plan stage (0: the first)"}
    )
    digest_id = fields.UUID(
        allow_none=True,
        metadata={
            "description": "The daily/weekly digest that carries it, if its recipient gets digests"
        },
    )
    channel = fields.String(metadata={"enum": list(CHANNELS)})
    recipient = fields.String(metadata={"description": 'An email address, or "webhook"'})
    recipient_source = fields.String(metadata={"enum": list(RECIPIENT_SOURCES)})
    status = fields.String(metadata={"enum": list(NOTIFICATION_STATUSES)})
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    delivered_via = fields.String(
        allow_none=True, metadata={"description": "smtp, log (no SMTP_HOST configured) or webhook"}
    )
    triggered_on = Date()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    sent_at = fields.DateTime(allow_none=True)


class NotificationListArgs(PageArgs):
    status = any_of(NOTIFICATION_STATUSES)
    channel = Text(validate=validate.OneOf(CHANNELS))
    assignment_id = fields.UUID()
    updated_since = updated_since("notifications")


class NotificationRetrySchema(Schema):
    status = Text(
        required=True,
        validate=validate.OneOf(RETRYABLE_NOTIFICATION_STATUSES),
        metadata={"description": "Resend the notifications in this state", "example": "failed"},
    )
    since = fields.AwareDateTime(
        required=True,
        default_timezone=UTC,
        metadata={
            "description": "Only those that reached the state at or after this time (UTC when "
            "no offset is given)",
            "example": "2026-11-30T00:00:00Z",
        },
    )


class RetryCountSchema(Schema):
    count = fields.Integer(metadata={"description": "How many notifications were queued again"})


class TaskSchema(NamesSchema):
    id = fields.UUID()
    kind = fields.String(metadata={"example": "renewal"})
    title = fields.String()
    assignment_id = fields.UUID()
    certification_id = fields.UUID()
    cycle = fields.Integer()
    rule_key = fields.String(metadata={"example": "renewal:30:holder"})
    assignee_id = fields.UUID(allow_none=True)
    due_on = Date()
    status = fields.String(metadata={"enum": list(TASK_STATUSES)})
    completed_at = fields.DateTime(allow_none=True)
    completed_by = fields.String(allow_none=True)
    closed_at = fields.DateTime(
        allow_none=True, metadata={"description": "When a renewal closed it or it was cancelled"}
    )
    note = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class TaskListArgs(PageArgs):
    status = any_of(TASK_STATUSES)
    assignee_id = fields.UUID()
    assignment_id = fields.UUID()
    certification_id = fields.UUID()
    subject_type = Text(validate=validate.OneOf(SUBJECT_KINDS))
    subject_id = fields.UUID()
    due_before = Date(
        validate=bounded_date, metadata={"description": "Tasks due on or before this date"}
    )
    updated_since = updated_since("tasks")


class TaskPatchSchema(Schema):
    assignee_id = fields.UUID(
        allow_none=True,
        metadata={"description": "An employee of the organization; null leaves it unassigned"},
    )
    status = Text(
        validate=validate.OneOf(SETTABLE_TASK_STATUSES),
        metadata={"description": "`done` completes the task, `open` reopens it, `cancelled`"},
    )
    due_on = Date(validate=bounded_date)
    note = Text(allow_none=True, validate=validate.Length(max=10_000))

    @validates_schema
    def _not_empty(self, data: dict[str, Any], **_kw: Any) -> None:
        if not data:
            raise ValidationError("Give at least one of: assignee_id, status, due_on, note.")


class AuditEventSchema(Schema):
    id = fields.UUID()
    actor = fields.String(allow_none=True, metadata={"description": "The token's `sub`"})
    action = fields.String(metadata={"example": "update"})
    entity_type = fields.String(metadata={"example": "employee"})
    entity_id = fields.UUID(allow_none=True)
    before = fields.Dict(allow_none=True)
    after = fields.Dict(allow_none=True)
    request_id = fields.String(allow_none=True)
    created_at = fields.DateTime()


class AuditListArgs(PageArgs):
    entity_type = Text(validate=validate.Length(min=1, max=64))
    entity_id = fields.UUID()
    actor = Text(validate=validate.Length(min=1, max=200))
    since = fields.AwareDateTime(
        default_timezone=UTC, metadata={"description": "Inclusive; UTC when no offset is given"}
    )
    until = fields.AwareDateTime(
        default_timezone=UTC, metadata={"description": "Exclusive; UTC when no offset is given"}
    )
