"""A tenant's one-statement read run on the pooled psycopg connection itself (PostgreSQL).

`tenancy.request.tenant_rows` runs a read that is a single statement in a transaction of its own
(one round trip: infra/pg_begin.py). Through SQLAlchemy's Core execution that statement still
cost more worker CPU than the rest of a `GET /org`: the execution context, the compiled-cache
lookup, result metadata built from the cursor's description, the `Row` objects. The statements
read this way are few and fixed (module constants; list pages' statements, built once per
shape), so each is compiled once, here, for the engine's dialect, and then run straight on the
driver's cursor: the same SQL text, the same parameters, the same connection from the same pool
(its checkout and checkin events run).

Only what SQLAlchemy would hand back unchanged qualifies (`plan`): a `Select` of plain columns
whose types convert nothing in Python on this dialect on the way out (on PostgreSQL: uuid,
text, integers, booleans, json, timestamptz), with names that make a named tuple; parameters
are converted on the way in as SQLAlchemy converts them (its bind processors: an ARRAY's, a
TypeDecorator's). Anything else (text SQL, entities, expanding `IN` parameters, a column whose
value SQLAlchemy converts on reading) goes through SQLAlchemy as before. Rows are named
tuples: attribute access, `_asdict()`, `_fields`, as a `Row` offers.

Errors: a connection the server dropped is discarded from the pool and the read runs again
through SQLAlchemy's execution (a read in a rolled-back transaction: running it again changes
nothing), whose own disconnect handling takes over if that connection is dead too (the pool
invalidated, the request run again: `api.unit_of_work`). Any other driver error is raised as
SQLAlchemy would raise it (`DBAPIError` wrapping the driver's), so `api.errors` answers it alike.
"""

from __future__ import annotations

import logging
import uuid
from collections import namedtuple
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import Column, Engine, Executable, Label, Select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import TypeEngine

from tenancy.scoping import queue_rls_tenant

log = logging.getLogger("certs.api")

# Set False to run every tenant read through SQLAlchemy's execution, whose engine events then
# see it (the `bench api` statement recorder).
enabled = True


@dataclass(frozen=True)
class Plan:
    sql: str
    compiled: Any  # SQLAlchemy's compiled statement: it builds the parameters
    converts_in: dict[str, Any]  # parameter name: SQLAlchemy's conversion of its value
    row: Any  # the named tuple class of its rows


# (statement id, dialect) → (the statement, so the id stays its own; its plan). The statements
# read this way are module constants and list pages' shapes (each page keeps up to 256): when
# the bound is reached the cache starts over, as the pages' own caches do, rather than stop
# keeping new statements and compile them on every request.
_plans: dict[tuple[int, str], tuple[Executable, Plan | None]] = {}
_KEPT = 2048


def plan(engine: Engine, statement: Executable) -> Plan | None:
    """How `statement` runs on the driver for `engine`, or None when it must go through
    SQLAlchemy (see the module doc)."""
    key = (id(statement), engine.dialect.name)
    kept = _plans.get(key)
    if kept is not None and kept[0] is statement:
        return kept[1]
    made = _make_plan(engine, statement)
    if len(_plans) >= _KEPT:
        _plans.clear()
    _plans[key] = (statement, made)
    return made


def _make_plan(engine: Engine, statement: Executable) -> Plan | None:
    dialect = engine.dialect
    if dialect.name != "postgresql" or not isinstance(statement, Select):
        return None
    if not all(isinstance(d["type"], TypeEngine) for d in statement.column_descriptions):
        return None  # an entity: SQLAlchemy maps its rows to objects
    # The names the server gives the result columns: a table column's own, or a label's.
    columns = list(statement.selected_columns)
    if not all(isinstance(c, Column | Label) for c in columns):
        return None  # an unlabelled expression: its name is the server's choice
    names = [c.name for c in columns]
    if len(set(names)) != len(names) or not all(n.isidentifier() and n[0] != "_" for n in names):
        return None
    for column in columns:
        try:  # the column's type in the result is unknown yet: a type that asks is refused
            converts = column.type.dialect_impl(dialect).result_processor(dialect, None)
        except Exception:  # noqa: BLE001 - e.g. Numeric, which picks by the result's type
            return None
        if converts is not None:
            return None
    compiled = statement.compile(dialect=dialect)
    converts_in = {}
    for bind in compiled.binds.values():
        if bind.expanding or bind.literal_execute:
            return None
        convert = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if convert is not None:  # SQLAlchemy's own conversion (a TypeDecorator's, an ARRAY's)
            converts_in[compiled.bind_names[bind]] = convert
    if "POSTCOMPILE" in compiled.string:
        return None
    return Plan(
        sql=compiled.string,
        compiled=compiled,
        converts_in=converts_in,
        row=namedtuple("Row", names),  # noqa: PYI024
    )


def driver_rows(
    engine: Engine,
    found: Plan,
    params: Mapping[str, Any] | None,
    org_id: uuid.UUID,
) -> Sequence[Any] | None:
    """The rows of the planned statement, run as `org_id` in a transaction that is the
    statement alone; None: the connection was dropped, run it through SQLAlchemy instead."""
    values = found.compiled.construct_params(params)
    for name, convert in found.converts_in.items():
        values[name] = convert(values[name])
    fairy = engine.raw_connection()
    try:
        driver: Any = fairy.driver_connection
        if driver is None or not queue_rls_tenant(driver, org_id, single=True):
            return None  # not a connection that opens transactions with the tenant
        try:
            with driver.cursor() as cursor:
                cursor.execute(found.sql, values)
                fetched = cursor.fetchall()
        except psycopg.Error as exc:
            if driver.closed or driver.broken:
                fairy.invalidate(exc)
                log.warning(
                    "stale pooled connection (%s), reading again on another", type(exc).__name__
                )
                return None
            raise DBAPIError.instance(
                found.sql,
                values,
                exc,
                psycopg.Error,
                hide_parameters=engine.hide_parameters,
                dialect=engine.dialect,
            ) from exc
    finally:
        fairy.close()
    make = found.row._make
    return [make(row) for row in fetched]
