"""Webhook endpoint and delivery schemas."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate

from api.fields import StrictBoolean, Text
from api.pagination import PageArgs
from certifications.webhooks.endpoints import known_event_types
from certifications.webhooks.models import DELIVERY_STATUSES


def _http_url(value: str) -> None:
    if not value.startswith(("https://", "http://")):
        raise ValidationError("Must be an http(s) URL.")


URL = {"validate": [validate.Length(max=2000), _http_url], "metadata": {"format": "uri"}}
EVENTS = {
    "validate": validate.Length(min=1, max=len(known_event_types())),
    "metadata": {"description": "Event types to receive; `*` for all."},
}


def _event() -> Text:
    return Text(validate=validate.OneOf(known_event_types()))


class WebhookSchema(Schema):
    id = fields.UUID(dump_only=True)
    url = fields.String()
    description = fields.String(allow_none=True)
    events = fields.List(fields.String())
    enabled = fields.Method("_enabled", metadata={"type": "boolean"})
    disabled_at = fields.DateTime(allow_none=True)
    disabled_reason = fields.String(allow_none=True)
    failing_since = fields.DateTime(allow_none=True)
    previous_secret_expires_at = fields.DateTime(
        allow_none=True, metadata={"description": "Until when the rotated-out secret also signs."}
    )
    created_at = fields.DateTime()
    updated_at = fields.DateTime()

    def _enabled(self, endpoint: object) -> bool:
        return getattr(endpoint, "disabled_at", None) is None


class WebhookWithSecretSchema(WebhookSchema):
    secret = fields.String(
        attribute="revealed_secret",
        metadata={"description": "The signing secret: shown once, here; store it now."},
    )


class WebhookCreateSchema(Schema):
    url = Text(required=True, **URL)  # type: ignore[arg-type]
    events = fields.List(_event(), required=True, **EVENTS)  # type: ignore[arg-type]
    description = Text(allow_none=True, validate=validate.Length(max=1000))


class WebhookPatchSchema(Schema):
    url = Text(**URL)  # type: ignore[arg-type]
    events = fields.List(_event(), **EVENTS)  # type: ignore[arg-type]
    description = Text(allow_none=True, validate=validate.Length(max=1000))
    enabled = StrictBoolean(metadata={"description": "false disables; true re-enables."})


class WebhookDeliverySchema(Schema):
    id = fields.UUID(dump_only=True)
    endpoint_id = fields.UUID()
    event_id = fields.UUID()
    event_type = fields.String()
    sequence = fields.Integer(attribute="seq")
    status = fields.String(metadata={"enum": list(DELIVERY_STATUSES)})
    attempts = fields.Integer()
    response_code = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    last_attempt_at = fields.DateTime(allow_none=True)
    delivered_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class WebhookDeliveryListArgs(PageArgs):
    status = Text(validate=validate.OneOf(DELIVERY_STATUSES))
