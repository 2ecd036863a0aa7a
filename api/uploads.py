"""Multipart request bodies (uploads): the form fields through a schema, the `file` parts as
`Upload`s. The body was bounded before the view ran (`api.limits`: the upload limit); werkzeug
spools each file part beyond 500 KB to a temporary file, so no file is held whole in memory.
"""

from __future__ import annotations

import json
from typing import Any

from flask import request
from marshmallow import Schema, ValidationError

from api.body import loads
from certifications.evidence.documents import UnsupportedType, Upload
from infra.errors import Invalid

FILE_FIELD = "file"


def form_data(schema: type[Schema]) -> dict[str, Any]:
    """The form fields loaded by `schema` (unknown ones refused, 422 naming the field);
    `answers` is a JSON object given as text."""
    if request.mimetype not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raise UnsupportedType(
            "Expected a multipart/form-data body (files in parts named `file`).",
            {"body": ["Send multipart/form-data."]},
        )
    raw: dict[str, Any] = {}
    for name in request.form:
        values = request.form.getlist(name)
        if len(values) > 1:
            raise Invalid({name: ["Give this field once."]})
        raw[name] = values[0] if values[0] != "" else None
    if isinstance(raw.get("answers"), str):
        try:
            raw["answers"] = loads(raw["answers"])
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise Invalid({"answers": ["Must be a JSON object."]}) from None
    try:
        return dict(schema().load(raw))
    except ValidationError as err:
        messages = err.messages if isinstance(err.messages, dict) else {"body": err.messages}
        raise Invalid(messages) from None


def file_parts(*, required: bool) -> list[Upload]:
    extra = [name for name in request.files if name != FILE_FIELD]
    if extra:
        raise Invalid({extra[0]: [f"Unknown file field; send files as `{FILE_FIELD}`."]})
    parts = [Upload(f.stream, f.filename) for f in request.files.getlist(FILE_FIELD)]
    if required and len(parts) != 1:
        raise Invalid({FILE_FIELD: ["Send exactly one file part named `file`."]})
    return parts
