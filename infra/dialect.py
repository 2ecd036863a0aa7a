"""Shared plumbing for rule evaluation: rule targets as a literal CTE, dialect-aware upserts.

Rules live as JSON on a handful of certifications; assignments are the many rows. Rules are
expanded in Python into "target" rows, sent as a small literal table (a UNION ALL subquery, which
both SQLite and PostgreSQL accept), and joined to assignments in ONE insert-select per batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Subquery, Table, cast, literal, literal_column, select, union_all
from sqlalchemy.dialects import postgresql, sqlite
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
    """`INSERT … SELECT … ON CONFLICT (keys) DO NOTHING`; returns the rows inserted."""
    insert = upsert_insert(session.get_bind().dialect.name, table)
    stmt = insert.from_select(columns, select_stmt).on_conflict_do_nothing(index_elements=keys)
    # SQLAlchemy 2.x only keeps an INSERT's rowcount when asked to.
    result = session.execute(stmt, execution_options={"preserve_rowcount": True})
    return max(result.rowcount or 0, 0)  # type: ignore[attr-defined]


def new_uuid_sql(dialect_name: str) -> Any:
    """A SQL expression making a fresh UUID per row, for set-based INSERT ... SELECT."""
    if dialect_name == "postgresql":
        return literal_column("gen_random_uuid()")
    # SQLAlchemy's Uuid stores 32 hex characters on SQLite.
    return literal_column("lower(hex(randomblob(16)))")
