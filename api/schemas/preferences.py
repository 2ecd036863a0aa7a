"""Reminder preference schemas (per email address) and the organization's digest settings."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from api.fields import Text
from api.pagination import PageArgs
from certifications.vocabulary import DIGEST_FREQUENCIES

FREQUENCY_DOC = (
    "`immediate`: one email per reminder; `daily`: one digest a day from `hour`; `weekly`: one "
    "digest on `weekday` from `hour` (the organization's time zone)."
)


def frequency_field(**kw: Any) -> fields.Field[Any]:
    return Text(
        validate=validate.OneOf(DIGEST_FREQUENCIES),
        metadata={"description": FREQUENCY_DOC, "example": "daily"},
        **kw,
    )


def hour_field(**kw: Any) -> fields.Field[Any]:
    return fields.Integer(
        strict=True,
        validate=validate.Range(min=0, max=23),
        metadata={
            "description": "Hour of the day the digest leaves (0-23, org time zone).",
            "example": 8,
        },
        **kw,
    )


def weekday_field(**kw: Any) -> fields.Field[Any]:
    return fields.Integer(
        strict=True,
        validate=validate.Range(min=0, max=6),
        metadata={"description": "Weekly digests: day of the week, 0 = Monday.", "example": 0},
        **kw,
    )


class PreferenceSchema(Schema):
    email = fields.String(metadata={"description": "The address (lower case)."})
    frequency = fields.String(metadata={"enum": list(DIGEST_FREQUENCIES)})
    hour = fields.Integer()
    weekday = fields.Integer()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class PreferencePutSchema(Schema):
    frequency = frequency_field(required=True)
    hour = hour_field(load_default=8)
    weekday = weekday_field(load_default=0)


class PreferenceArgs(PageArgs):
    pass
