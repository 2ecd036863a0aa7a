"""Keyset (cursor) pagination, the one helper every list uses (SPEC §7)."""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from marshmallow import Schema, fields, validate
from sqlalchemy import Integer as SqlInteger
from sqlalchemy import Select, and_, bindparam, literal, or_, tuple_
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
    session: Session,
    stmt: Select[Any],
    key_columns: list[Any],
    limit: int,
    cursor: str | None,
    descending: list[bool] | None = None,
) -> Page:
    """Rows of `stmt` ordered by `key_columns` (unique together, not null), after `cursor`.

    `stmt` selects one ORM entity. `descending` flags the columns sorted high to low (a
    `?sort=-field`; none by default). A hot page builds its statement once instead
    (`keyset_statement`)."""
    desc = descending or [False] * len(key_columns)
    if cursor:
        values = _decode(cursor, key_columns)
        # Bind with each column's own type (e.g. UTC timestamps stored as text on SQLite).
        typed = [literal(v, col.type) for v, col in zip(values, key_columns, strict=True)]
        stmt = stmt.where(_beyond(key_columns, typed, desc))
    ordered = stmt.order_by(*_order(key_columns, desc)).limit(limit + 1)
    return keyset_page(session.scalars(ordered).all(), key_columns, limit)


def keyset_statement(
    stmt: Select[Any], key_columns: list[Any], descending: list[bool], after: bool
) -> Select[Any]:
    """`stmt` paged as `paginate` pages it, every value a bind parameter (`keyset_params`), for
    a statement built once and run many times: ordered by the keys, after the cursor's key
    values when `after`, limited to one row more than the page."""
    if after:
        keys = [bindparam(f"key_{i}", type_=col.type) for i, col in enumerate(key_columns)]
        stmt = stmt.where(_beyond(key_columns, keys, descending))
    limit = bindparam("limit", type_=SqlInteger())
    return stmt.order_by(*_order(key_columns, descending)).limit(limit)


def keyset_params(key_columns: list[Any], limit: int, cursor: str | None) -> dict[str, Any]:
    """The values of `keyset_statement`'s parameters (a bad cursor is a 422 naming it)."""
    params: dict[str, Any] = {"limit": limit + 1}
    if cursor:
        values = _decode(cursor, key_columns)
        params.update((f"key_{i}", value) for i, value in enumerate(values))
    return params


def keyset_page(found: Sequence[Any], key_columns: list[Any], limit: int) -> Page:
    """The page of `found` (up to `limit` + 1 rows, as `paginate` asked them)."""
    items = list(found[:limit])
    next_cursor = cursor_after(items[-1], key_columns) if len(found) > limit else None
    return Page(items=items, next_cursor=next_cursor)


def _order(key_columns: list[Any], desc: list[bool]) -> list[Any]:
    return [col.desc() if d else col for col, d in zip(key_columns, desc, strict=True)]


def _beyond(key_columns: list[Any], values: list[Any], desc: list[bool]) -> Any:
    """The rows after `values` in the keys' order."""
    if any(desc):
        return _after(key_columns, values, desc)
    return tuple_(*key_columns) > tuple_(*values)


def _after(columns: list[Any], values: list[Any], desc: list[bool]) -> Any:
    """Keyset condition for mixed directions: (a > x) OR (a = x AND b < y) OR ..."""
    clauses = []
    for i, (col, value) in enumerate(zip(columns, values, strict=True)):
        beyond = col < value if desc[i] else col > value
        equal = [c == v for c, v in zip(columns[:i], values[:i], strict=True)]
        clauses.append(and_(*equal, beyond))
    return or_(*clauses)


def sort_field(fields_allowed: tuple[str, ...], default: str) -> fields.Field[Any]:
    """`?sort=name,-updated_at`: up to three of `fields_allowed`, `-` for descending (422
    naming `sort` otherwise). Loads as [(field, descending), ...]."""
    return SortSpec(fields_allowed, default)


class SortSpec(Text):
    default_error_messages = {
        **Text.default_error_messages,
        "sort": "Comma-separated fields among {allowed}, each optionally prefixed with - "
        "(descending), at most three, none twice.",
    }

    def __init__(self, allowed: tuple[str, ...], default: str) -> None:
        self.allowed = allowed
        names = ", ".join(allowed)
        super().__init__(
            load_default=default,
            validate=validate.Length(max=200),
            metadata={
                "description": f"Order of the list: {names}; `-` before a field sorts it "
                f"descending, commas combine fields (e.g. `{allowed[0]},-{allowed[-1]}`). "
                f"Default `{default}`; ties are broken by id.",
                "pattern": r"^-?[a-z_]+(,-?[a-z_]+){0,2}$",
                "example": f"-{allowed[-1]}",
            },
        )

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        return self.parse(text)

    def parse(self, text: str) -> list[tuple[str, bool]]:
        spec: list[tuple[str, bool]] = []
        for part in text.split(","):
            name = part.strip()
            descending = name.startswith("-")
            name = name.removeprefix("-")
            if name not in self.allowed or any(name == seen for seen, _ in spec):
                raise self.make_error("sort", allowed=", ".join(self.allowed))
            spec.append((name, descending))
        if not 1 <= len(spec) <= 3:
            raise self.make_error("sort", allowed=", ".join(self.allowed))
        return spec


def sorted_keys(model: Any, spec: list[tuple[str, bool]] | str) -> tuple[list[Any], list[bool]]:
    """Key columns and directions for `paginate`: the sorted fields, then the id ascending."""
    if isinstance(spec, str):  # the default, not loaded
        spec = [(p.removeprefix("-"), p.startswith("-")) for p in spec.split(",")]
    columns = [getattr(model, name) for name, _ in spec] + [model.id]
    return columns, [d for _, d in spec] + [False]


def cursor_after(item: Any, key_columns: list[Any]) -> str:
    """The cursor of the page after `item` (also for a page a view cut short itself)."""
    return _encode([getattr(item, col.key) for col in key_columns])
