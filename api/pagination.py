"""Keyset (cursor) pagination, the one helper every list uses (SPEC §7)."""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from marshmallow import Schema, fields, validate
from sqlalchemy import Select, literal, tuple_
from sqlalchemy.orm import Session

from api.fields import Integer, Text
from infra.errors import Invalid
from infra.values import parse_iso_date, text_problem

_INT = re.compile(r"-?[0-9]{1,19}", re.ASCII)
DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class PageArgs(Schema):
    limit = Integer(
        load_default=DEFAULT_LIMIT,
        validate=validate.Range(min=1, max=MAX_LIMIT),
        metadata={"description": f"Page size, 1 to {MAX_LIMIT}."},
    )
    cursor = Text(
        load_default=None,
        validate=validate.Length(max=1000),
        metadata={"description": "`next_cursor` of the previous page."},
    )


@dataclass
class Page:
    items: list[Any]
    next_cursor: str | None


@functools.cache
def page_schema(item_schema: type[Schema], name: str | None = None) -> type[Schema]:
    """`{"items": [...], "next_cursor": ...}` for an item schema (named for the OpenAPI doc;
    one class per item schema, so two endpoints listing the same items share it)."""
    name = name or item_schema.__name__.removesuffix("Schema") + "PageSchema"
    return Schema.from_dict(
        {
            "items": fields.List(fields.Nested(item_schema), required=True),
            "next_cursor": fields.String(allow_none=True, required=True),
        },
        name=name,
    )


def _encode(values: list[Any]) -> str:
    raw = json.dumps([v.isoformat() if isinstance(v, date) else str(v) for v in values])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str, columns: list[Any]) -> list[Any]:
    """The key values of a cursor we issued; anything else is a 422 naming `cursor`.

    A cursor is client input: its values reach the SQL as bind parameters, so text must be
    storable (no NUL, no lone surrogate: both used to fail at the driver, a 500) and every
    other value must be of its column's type and range.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")
        raw = json.loads(text)
        if not isinstance(raw, list) or len(raw) != len(columns):
            raise ValueError("shape")
        return [_parse(v, col) for v, col in zip(raw, columns, strict=True)]
    except (ValueError, TypeError, binascii.Error, RecursionError) as exc:
        raise Invalid({"query": {"cursor": ["Not a valid cursor."]}}) from exc


def _parse(value: Any, column: Any) -> Any:
    if not isinstance(value, str) or text_problem(value) is not None:
        raise ValueError("cursor value")
    kind = column.type.python_type
    if kind is object:  # a TypeDecorator (e.g. UTCDateTime): ask the type it decorates
        kind = column.type.impl_instance.python_type
    if kind is uuid.UUID:
        return uuid.UUID(value)
    if kind is datetime:
        return datetime.fromisoformat(value)
    if kind is date:
        return parse_iso_date(value)
    if kind is int:
        number = int(value) if _INT.fullmatch(value) else None
        if number is None or not -(2**63) <= number < 2**63:
            raise ValueError("cursor integer")
        return number
    if kind is bool:
        return value == "True"
    return value


def paginate(
    session: Session, stmt: Select[Any], key_columns: list[Any], limit: int, cursor: str | None
) -> Page:
    """Rows of `stmt` ordered by `key_columns` (unique together, not null), after `cursor`.

    `stmt` selects one ORM entity; the last key column should be the primary key.
    """
    if cursor:
        values = _decode(cursor, key_columns)
        # Bind with each column's own type (e.g. UTC timestamps stored as text on SQLite).
        typed = [literal(v, col.type) for v, col in zip(values, key_columns, strict=True)]
        stmt = stmt.where(tuple_(*key_columns) > tuple_(*typed))
    rows = session.scalars(stmt.order_by(*key_columns).limit(limit + 1)).all()
    items = list(rows[:limit])
    next_cursor = cursor_after(items[-1], key_columns) if len(rows) > limit else None
    return Page(items=items, next_cursor=next_cursor)


def cursor_after(item: Any, key_columns: list[Any]) -> str:
    """The cursor of the page after `item` (also for a page a view cut short itself)."""
    return _encode([getattr(item, col.key) for col in key_columns])
