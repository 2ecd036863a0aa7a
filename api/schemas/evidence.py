"""Evidence schemas: documents, submissions, the review queue, the self-service profile."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from api.fields import Integer, Text, name_field
from api.pagination import PageArgs
from api.schemas.assignments import NOTES, _date
from certifications.vocabulary import DOCUMENT_TYPES, SUBMISSION_STATUSES

MAX_CYCLE = 1_000_000


class DocumentSchema(Schema):
    id = fields.UUID()
    assignment_id = fields.UUID()
    cycle = fields.Integer(metadata={"description": "The assignment cycle it evidences"})
    submission_id = fields.UUID(allow_none=True)
    filename = fields.String(metadata={"description": "Sanitised; ends in the real type"})
    content_type = fields.String(metadata={"enum": list(DOCUMENT_TYPES)})
    size = fields.Integer(metadata={"description": "Bytes"})
    sha256 = fields.String()
    uploaded_by = fields.String(allow_none=True)
    created_at = fields.DateTime()


class DocumentListSchema(Schema):
    items = fields.List(fields.Nested(DocumentSchema))


class UploadFormSchema(Schema):
    """The form fields beside the `file` part of a document upload."""

    cycle = Integer(
        allow_none=True,
        validate=validate.Range(min=1, max=MAX_CYCLE),
        metadata={"description": "The cycle the file evidences (default: the current one)"},
    )


class SubmissionFormSchema(Schema):
    """What a submission records: dates, notes, the form's answers (files are `file` parts)."""

    issued_on = _date(metadata={"description": "Date the certificate was issued (default today)"})
    effective_on = _date(metadata={"description": "Defaults to issued_on"})
    expires_on = _date(metadata={"description": "Defaults to effective_on + validity"})
    notes = Text(**NOTES)
    answers = fields.Dict(
        keys=Text(validate=validate.Length(min=1, max=200)),
        allow_none=True,
        validate=validate.Length(max=200),
        metadata={"description": "The certification form's answers (a JSON text in a form)"},
    )


class SubmissionSchema(Schema):
    id = fields.UUID()
    assignment_id = fields.UUID()
    cycle = fields.Integer(metadata={"description": "The assignment's cycle when submitted"})
    status = fields.String(metadata={"enum": list(SUBMISSION_STATUSES)})
    issued_on = fields.Date(allow_none=True)
    effective_on = fields.Date(allow_none=True)
    expires_on = fields.Date(allow_none=True)
    notes = fields.String(allow_none=True)
    answers = fields.Dict(allow_none=True)
    submitted_by = fields.String(allow_none=True)
    submitter_employee_id = fields.UUID(allow_none=True)
    reviewed_by = fields.String(allow_none=True)
    reviewed_at = fields.DateTime(allow_none=True)
    reason = fields.String(allow_none=True)
    created_at = fields.DateTime()


class SubmissionListArgs(PageArgs):
    status = Text(validate=validate.OneOf(SUBMISSION_STATUSES))
    certification_id = fields.UUID()
    location_id = fields.UUID(metadata={"description": "Submissions for that location's own"})
    assignment_id = fields.UUID()


class RejectSchema(Schema):
    reason = name_field(max_length=2000, required=True)


class MeSchema(Schema):
    id = fields.UUID()
    name = fields.String()
    email = fields.String(allow_none=True)
    external_id = fields.String(allow_none=True)
    active = fields.Boolean()


_DATE = {"type": "string", "format": "date", "nullable": True}
_BINARY = {"type": "string", "format": "binary"}
UPLOAD_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": _BINARY | {"description": "PDF, PNG, JPEG, HEIC or WebP"},
                    "cycle": {"type": "integer", "minimum": 1, "maximum": MAX_CYCLE},
                },
            }
        }
    },
}
SUBMISSION_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "issued_on": _DATE,
                    "effective_on": _DATE,
                    "expires_on": _DATE,
                    "notes": {"type": "string", "maxLength": 10_000},
                    "answers": {"type": "string", "description": "JSON object of answers"},
                    "file": {"type": "array", "items": _BINARY, "maxItems": 10},
                },
            }
        },
    },
}
