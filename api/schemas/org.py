"""Organization schemas."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from api.fields import Email, FieldOptions, StrictBoolean, Text, name_field
from api.schemas.preferences import FREQUENCY_DOC, frequency_field, hour_field, weekday_field
from tenancy.models import MODULES


def _timezone(value: str) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError("Not a known IANA time zone, e.g. Europe/Paris.") from exc


def _https_or_http_url(value: str) -> None:
    if not value.startswith(("https://", "http://")):
        raise ValidationError("Must be an http(s) URL.")


TIMEZONE: FieldOptions = {
    "validate": [validate.Length(max=64), _timezone],
    "metadata": {"example": "Europe/Paris"},
}


class OrganizationSchema(Schema):
    id = fields.UUID(dump_only=True)
    name = fields.String(metadata={"example": "Acme Field Services"})
    timezone = fields.String(metadata={"description": "IANA zone that defines 'today'"})
    modules = fields.List(
        fields.String(metadata={"enum": list(MODULES)}), metadata={"example": ["hse"]}
    )
    admin_emails = fields.List(fields.String())
    reviewer_emails = fields.List(
        fields.String(), metadata={"description": "Told of submissions awaiting review."}
    )
    webhook_url = fields.String(allow_none=True)
    webhook_secret_set = fields.Method("_secret_set", metadata={"type": "boolean"})
    default_task_assignee_id = fields.UUID(allow_none=True)
    digest_frequency = fields.String(
        metadata={"description": "Recipients without their own preference: " + FREQUENCY_DOC}
    )
    digest_hour = fields.Integer(metadata={"description": "Hour digests leave (org time zone)."})
    digest_weekday = fields.Integer(metadata={"description": "Weekly digests' day, 0 = Monday."})
    require_if_match = fields.Boolean(
        metadata={"description": "PATCH of certifications and groups needs If-Match (428)."}
    )
    created_at = fields.DateTime()
    updated_at = fields.DateTime()

    def _secret_set(self, org: object) -> bool:
        return getattr(org, "webhook_secret", None) is not None  # never decrypted here


class OrganizationCreateSchema(Schema):
    name = name_field(required=True)
    timezone = Text(load_default="UTC", **TIMEZONE)
    modules = fields.List(
        Text(validate=validate.OneOf(MODULES)), load_default=list, validate=validate.Length(max=10)
    )
    admin_emails = fields.List(Email(), load_default=list, validate=validate.Length(max=50))


class OrganizationPatchSchema(Schema):
    name = name_field()
    timezone = Text(**TIMEZONE)
    admin_emails = fields.List(Email(), validate=validate.Length(max=50))
    reviewer_emails = fields.List(
        Email(),
        validate=validate.Length(max=50),
        metadata={"description": "Told of submissions awaiting review (the admins if empty)."},
    )
    webhook_url = Text(allow_none=True, validate=[validate.Length(max=2000), _https_or_http_url])
    webhook_secret = Text(
        allow_none=True,
        load_only=True,
        validate=validate.Length(min=16, max=200),
        metadata={"description": "Write-only HMAC key for webhook signatures; never returned."},
    )
    default_task_assignee_id = fields.UUID(
        allow_none=True,
        metadata={
            "description": "An employee who gets the renewal tasks of assets, clients and "
            "locations (a certification's task_assignee_id overrides it); null: unassigned."
        },
    )
    digest_frequency = frequency_field()
    digest_hour = hour_field()
    digest_weekday = weekday_field()

    require_if_match = StrictBoolean(
        metadata={
            "description": "Conditional writes: PATCH of certifications and certification groups "
            "must send If-Match with the ETag of a GET (428 without, 412 when stale)."
        }
    )

    @validates_schema(pass_original=True)
    def _not_empty(self, data: dict[str, Any], original: Any, **_kw: Any) -> None:
        if not original:
            raise ValidationError("Give at least one field to change.")


class ModuleToggleSchema(Schema):
    enabled = StrictBoolean(required=True)
