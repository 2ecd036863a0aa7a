"""Answers written from selected columns with orjson, shaped by their documented schema.

Read endpoints on the hot path (directory list pages, `GET /org`) select the columns their
response schema shows instead of loading ORM entities, and write the JSON with orjson instead
of dumping through marshmallow: entity loading and the dump were over a third of such a
request's worker time. The marshmallow schema still documents the answer in the OpenAPI
document and decides its fields here; tests hold each answer equal to the schema's dump of the
same row (`tests/api/test_list_pages.py`, `tests/api/test_org_answer.py`).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from typing import Any

import orjson
from flask import Response
from marshmallow import Schema
from marshmallow.fields import UUID, List

_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE


class RowShape:
    """How a row of `model`'s columns becomes the JSON object `schema` documents.

    `computed`: schema fields that are not columns (the caller fills them in)."""

    def __init__(self, model: Any, schema: type[Schema], computed: Collection[str] = ()) -> None:
        fields = schema().fields
        self.names = sorted(fields)
        self.columns = [getattr(model, name) for name in self.names if name not in computed]
        self.uuid_lists = {
            n
            for n, f in fields.items()
            if isinstance(f, List) and isinstance(f.inner, UUID) and n not in computed
        }

    def item(self, row: Any) -> dict[str, Any]:
        """The row (a result row of `columns`, plus any labelled extras) as the schema's dict."""
        return self._shaped(row._asdict())

    def items(self, rows: Sequence[Any]) -> list[dict[str, Any]]:
        """`item` of each row, in one pass: dates stay dates, for orjson writes a date or an
        aware datetime exactly as `isoformat` does (the schema's DateTime dump)."""
        if not rows:
            return []
        names = rows[0]._fields
        return [self._shaped(dict(zip(names, row, strict=True))) for row in rows]

    def entity_item(self, entity: Any, **extra: Any) -> dict[str, Any]:
        """The same from an entity already loaded (its columns' attributes), plus `extra`."""
        item = {column.key: getattr(entity, column.key) for column in self.columns}
        return self._shaped({**item, **extra})

    def _shaped(self, item: dict[str, Any]) -> dict[str, Any]:
        # Dates stay dates: orjson writes a date or an aware datetime as `isoformat` does.
        for name in self.uuid_lists:
            item[name] = [str(uuid.UUID(str(v))) for v in item[name] or ()]
        return item


def json_response(body: Any, status: int = 200) -> Response:
    """`body` as Flask's JSON provider writes it (keys sorted, a final newline), by orjson."""
    return Response(orjson.dumps(body, option=_OPTIONS), status=status, mimetype="application/json")
