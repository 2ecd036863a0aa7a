"""Job schemas."""

from __future__ import annotations

from marshmallow import Schema, fields


class JobSchema(Schema):
    id = fields.UUID()
    kind = fields.String(metadata={"example": "role_fanout"})
    state = fields.String(metadata={"enum": ["queued", "running", "done", "failed"]})
    done = fields.Integer(metadata={"description": "Units of work finished"})
    total = fields.Integer(allow_none=True, metadata={"description": "Units of work, if known"})
    error = fields.String(allow_none=True)
    result = fields.Dict(allow_none=True)
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
