"""Shared plumbing for rule evaluation: rule targets as a literal CTE, dialect-aware upserts.

Rules live as JSON on a handful of certifications; assignments are the many rows. Rules are
expanded in Python into "target" rows, sent as a small literal table (a UNION ALL subquery, which
both SQLite and PostgreSQL accept), and joined to assignments in ONE insert-select per batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    Subquery,
    Table,
    any_,
    bindparam,
    cast,
    literal,
    literal_column,
    select,
    text,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

# Bound parameters per statement stay well under SQLite's limit.
BATCH = 200


def literal_table(
    session: Session,
    name: str,
    columns: Sequence[tuple[str, TypeEngine[Any]]],
    rows: Sequence[Sequence[Any]],
) -> Subquery:
    """`rows` as a CTE with typed columns.

    PostgreSQL gets explicit CASTs (it cannot guess the type of a NULL in a UNION); SQLite must
    not (`CAST('2026-01-01' AS DATE)` is the number 2026 there).
    """
    pg = session.get_bind().dialect.name == "postgresql"

    def value(v: Any, t: TypeEngine[Any]) -> Any:
        return cast(literal(v, t), t) if pg else literal(v, t)

    selects = [
        select(*[value(v, t).label(c) for (c, t), v in zip(columns, row, strict=True)])
        for row in rows
    ]
    # A subquery, not a CTE: Python's sqlite3 reports no rowcount for a statement that starts
    # with WITH, and the callers report how many rows they inserted.
    if len(selects) == 1:
        return selects[0].subquery(name)
    return union_all(*selects).subquery(name)


def batches(rows: Sequence[Any], size: int = BATCH) -> Iterable[Sequence[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def upsert_insert(dialect_name: str, table: Any) -> Any:
    """The dialect's INSERT that takes ON CONFLICT (PostgreSQL and SQLite): the one place the
    project picks it (`table` a Table or a mapped class)."""
    if dialect_name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def insert_ignoring_conflicts(
    session: Session, table: Table, columns: list[str], select_stmt: Any, keys: list[str]
) -> int:
    """`INSERT … SELECT … ON CONFLICT (keys) DO NOTHING`; returns the rows inserted.

    The rows go in ordered by the conflict key. Two transactions inserting overlapping keys (an
    API request's evaluation and the worker's tick over the same organization) each wait for the
    other's uncommitted row of a shared key; in an arbitrary order the first can hold A and wait
    for B while the second holds B and waits for A, and PostgreSQL kills one as a deadlock. In
    one order, whoever takes the first shared key goes through and the other waits, then skips.
    """
    insert = upsert_insert(session.get_bind().dialect.name, table)
    ordered = select_stmt.order_by(*(text(str(columns.index(k) + 1)) for k in keys))
    stmt = insert.from_select(columns, ordered).on_conflict_do_nothing(index_elements=keys)
    # SQLAlchemy 2.x only keeps an INSERT's rowcount when asked to.
    result = session.execute(stmt, execution_options={"preserve_rowcount": True})
    return max(result.rowcount or 0, 0)  # type: ignore[attr-defined]


def new_uuid_sql(dialect_name: str) -> Any:
    """A SQL expression making a fresh UUID per row, for set-based INSERT ... SELECT."""
    if dialect_name == "postgresql":
        return literal_column("gen_random_uuid()")
    # SQLAlchemy's Uuid stores 32 hex characters on SQLite.
    return literal_column("lower(hex(randomblob(16)))")


def one_of(session: Session, column: Any, values: Sequence[Any]) -> Any:
    """`column IN (values)`; on PostgreSQL `column = ANY(:array)`: one parameter, so one SQL
    text whatever the number of values (statement caches of SQLAlchemy and psycopg hit, and no
    per-value parameter rendering)."""
    return one_of_param(session.get_bind().dialect.name, column, None, list(values))


def one_of_param(dialect_name: str, column: Any, name: str | None, values: Any = None) -> Any:
    """`one_of` with a named parameter, for a statement built once and given its values at
    each execution (`values` None)."""
    if dialect_name == "postgresql":
        return column == any_(bindparam(name, values, type_=ARRAY(column.type)))
    return column.in_(bindparam(name, values, expanding=True))


# `LIKE … ESCAPE '/'`, for a statement built once with its pattern a bind parameter.
LIKE_ESCAPE = "/"


def contains_pattern(text: str) -> str:
    """The `LIKE` pattern (escape `LIKE_ESCAPE`) of values containing `text` lowered, its
    wildcards escaped as SQLAlchemy's `contains(…, autoescape=True)` escapes them."""
    escaped = text.lower().replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
    escaped = escaped.replace("%", LIKE_ESCAPE + "%").replace("_", LIKE_ESCAPE + "_")
    return f"%{escaped}%"
