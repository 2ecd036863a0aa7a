"""Tenant scoping of every session, in one place.

* Statements written on mapped classes get `org_id = <current tenant>` added for every tenant
  entity they read, wherever it appears (SQLAlchemy's `with_loader_criteria`): ORM selects with
  their subqueries, EXISTS and CTEs (recursive ones too), lazy loads, `Session.get`, ORM
  UPDATE/DELETE (the target and its subqueries) and the SELECT of an INSERT … SELECT. With no
  tenant in context they match nothing: scoping fails closed.
* What the criteria cannot reach is written through ONE helper, `tenant_statement` (grep it to
  list every exception): the extra FROM table of a multi-table UPDATE, Core tables, text SQL.
* A guard refuses (`UnscopedStatement`) any statement run through a session that touches a
  tenant table outside both, and an INSERT whose rows name another organization
  (`TenantMismatch`). On SQLite (no RLS) it is the wall that the ORM criteria does not forget.
* New tenant rows added to the session get the current `org_id`; a row naming another org is
  refused at flush.
* On PostgreSQL each transaction sets `app.org_id` (transaction-local), which the RLS policies
  read, so SQL that slipped past all of the above still sees only the current org.

`execution_options(all_tenants=True)` is the explicit, rare opt-out (never used by the API:
tests' raw SQL and benchmarks' set-up). Bare connections (migrations, the metrics gauges, the
scheduler's lock) do not pass through a session and are not guarded.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import Table, bindparam, event, false
from sqlalchemy.orm import (
    ORMExecuteState,
    Session,
    SessionTransaction,
    sessionmaker,
    with_loader_criteria,
)
from sqlalchemy.sql import ClauseElement, Delete, Executable, Insert, Update
from sqlalchemy.sql.elements import BindParameter, ColumnClause, Label, TextClause
from sqlalchemy.sql.selectable import Alias, FromClause, Join, Select, SelectBase
from sqlalchemy.sql.visitors import HasTraverseInternals

from infra.context import current_org_id, in_platform_context
from infra.database import Base
from infra.pg_begin import open_transaction_with
from tenancy.models import TenantScoped

S = TypeVar("S", bound=ClauseElement)
# The execution option `tenant_statement` sets: the tables it scoped by hand.
EXPLICIT = "tenant_scoped_tables"

# Flipped only by the defense-in-depth tests, to prove RLS holds on its own.
ORM_FILTER_ENABLED = True


class TenantMismatch(RuntimeError):
    """A write named an organization other than the one in context."""


class UnscopedStatement(RuntimeError):
    """A statement touches a tenant table that neither the session's criteria nor
    `tenant_statement` scopes to the current organization."""


def tenant_statement(stmt: S, *tables: Any) -> S:
    """The one way to scope what the session's criteria cannot: `stmt` with
    `<table>.org_id = <current tenant>` added to its WHERE for each of `tables` (tables or
    mapped classes), marked so the guard accepts those tables *at this statement's level* (a
    nested select is checked on its own).

    For a statement whose rows it cannot filter (text SQL reading no tenant rows, an INSERT
    whose written `org_id` the guard cannot see), call it with no tables: the mark alone says
    "checked by hand", and `git grep tenant_statement` lists every such place.
    """
    org_id = current_org_id()
    if org_id is None:
        raise UnscopedStatement("tenant_statement needs a tenant in context")
    names = set()
    for table in tables:
        column = table.c.org_id if isinstance(table, FromClause) else table.org_id
        stmt = stmt.where(column == org_id)  # type: ignore[attr-defined]
        names.add(_base_table(column.table).name)
    return stmt.execution_options(**{EXPLICIT: frozenset(names)})  # type: ignore[attr-defined,no-any-return]


# The parameter a prebuilt statement's tenant is bound to, by `run_prebuilt` alone.
ORG_PARAM = "org_id"


def prebuilt_tenant_statement(stmt: S, *tables: Any) -> S:
    """A statement built once and run many times on the session's connection (`run_prebuilt`):
    `<table>.org_id = :org_id` added to its WHERE for each of `tables`.

    A hot read built per request paid, each time, its construction, the session's criteria
    and guard, SQLAlchemy's cache key and the adaptation of the cached result to the new
    statement's columns: about as much CPU as the query's round trip. Run on the connection,
    none of the session's criteria applies, so the guard runs here, once, and strictly: every
    tenant table the statement reads, at every level, must be listed (a nested select lists
    its own, built with this function too), or `UnscopedStatement`. The tenant is a bound
    parameter whose value `run_prebuilt` alone supplies, from the context; on PostgreSQL RLS
    applies as to any query. As with `tenant_statement`, a level's tables are told apart by
    name: a statement reading one table twice at one level (an alias) must list each.
    """
    names = set()
    for table in tables:
        column = table.c.org_id if isinstance(table, FromClause) else table.org_id
        stmt = stmt.where(column == bindparam(ORG_PARAM, type_=column.type))  # type: ignore[attr-defined]
        names.add(_base_table(column.table).name)
    stmt = stmt.execution_options(**{EXPLICIT: frozenset(names)})  # type: ignore[attr-defined]
    unscoped = unscoped_tables(stmt, core=True)
    if unscoped:
        raise UnscopedStatement(
            f"prebuilt statement reads tenant table(s) {', '.join(sorted(unscoped))} that it"
            " does not scope: list each at its level in prebuilt_tenant_statement"
        )
    return stmt


def run_prebuilt(session: Session, stmt: Executable, params: Mapping[str, Any]) -> Any:
    """Execute a `prebuilt_tenant_statement` on the session's connection (its transaction,
    its tenant) as the current organization; `params` cannot name another."""
    return session.connection().execute(stmt, prebuilt_params(params))


def prebuilt_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """`params` of a `prebuilt_tenant_statement` with its tenant parameter bound to the current
    organization, whatever `params` said of it."""
    org_id = current_org_id()
    if org_id is None:
        raise UnscopedStatement("a prebuilt tenant statement needs a tenant in context")
    return {**params, ORG_PARAM: org_id}


def run_scoped(session: Session, stmt: Select[Any]) -> Any:
    """`session.execute(stmt)` for a select of many plain rows, on the session's connection: the
    same tenant criteria and the same guard as the session's hook (`_scope_to_tenant`) give it,
    so the same SQL, but Core rows. SQLAlchemy compiles an ORM-enabled select through the ORM on
    a connection too (the criteria option applies), and skips the ORM's per-row processing of
    the result: a views page's ~1,000 certification rows cost ~1.5 ms less."""
    scoped = stmt.options(_criteria(current_org_id())) if ORM_FILTER_ENABLED else stmt
    _guard(stmt, scoped, None)
    return session.connection().execute(scoped)


def _scope_to_tenant(state: ORMExecuteState) -> None:
    """The session's one `do_orm_execute` hook: add the tenant criteria, then guard."""
    if state.is_column_load or state.is_relationship_load:
        return  # the criteria already travel with the parent load's options
    if state.execution_options.get("all_tenants", False):
        return
    original = state.statement
    if ORM_FILTER_ENABLED and (
        state.is_select or state.is_update or state.is_delete or state.is_insert
    ):  # (an INSERT gets the criteria for the SELECT of its INSERT … SELECT)
        org_id = current_org_id()  # read here: a contextvar inside the lambda raises
        state.statement = state.statement.options(_criteria(org_id))
    _guard(original, state.statement, state.parameters)


# One criteria option per organization, reused by every statement of its requests: building
# it (a lambda element analysed for its closure) was a tenth of a small request's worker time.
# The option is immutable; the org id it binds is a parameter of the cached statement.
_CRITERIA: dict[uuid.UUID | None, Any] = {}
_CRITERIA_MAX = 10_000


def _criteria(org_id: uuid.UUID | None) -> Any:
    found = _CRITERIA.get(org_id)
    if found is None:
        if org_id is None:
            found = with_loader_criteria(TenantScoped, lambda cls: false(), include_aliases=True)
        else:
            found = with_loader_criteria(
                TenantScoped, lambda cls: cls.org_id == org_id, include_aliases=True
            )
        if len(_CRITERIA) >= _CRITERIA_MAX:
            _CRITERIA.clear()
        _CRITERIA[org_id] = found
    return found


# --- The guard ------------------------------------------------------------------------------


@cache
def tenant_tables() -> frozenset[str]:
    """Names of the tables of tenant entities (every mapper is known once bootstrap ran)."""
    return frozenset(
        m.local_table.name
        for m in Base.registry.mappers
        if issubclass(m.class_, TenantScoped) and isinstance(m.local_table, Table)
    )


@cache
def _tenant_words() -> re.Pattern[str]:
    names = "|".join(sorted(tenant_tables(), key=len, reverse=True))
    return re.compile(rf"\b({names})\b", re.IGNORECASE)


def _base_table(from_: Any) -> Any:
    while isinstance(from_, Alias):
        from_ = from_.element
    return from_


def _orm(element: Any) -> bool:
    """Reached through a mapped class (so the session's criteria applies to it)."""
    return "parententity" in getattr(element, "_annotations", {})


def _explicit(element: Any) -> frozenset[str] | None:
    marked = getattr(element, "_execution_options", {}).get(EXPLICIT)
    return None if marked is None else frozenset(marked)


def unscoped_tables(statement: Executable | ClauseElement, *, core: bool = False) -> set[str]:
    """Tenant tables `statement` reads or changes that no tenant criteria covers.

    Checked per statement level (a select, a subquery's or CTE's select, an UPDATE/DELETE):
    a tenant table reached there through its mapped class is covered (the criteria is added
    to that FROM, and a bare column of the same table names the same FROM); a second table of
    an UPDATE/DELETE is not (the criteria binds only the target); a bare table is covered only
    if `tenant_statement` listed it for this very level. Text SQL naming a tenant table is
    covered only by `tenant_statement`. The target of an INSERT is not read: `_check_insert`
    checks the `org_id` it writes.

    `core`: the statement runs on the connection, where no criteria applies: a tenant table
    is covered only where `prebuilt_tenant_statement` (or `tenant_statement`) listed it.
    """
    found: set[str] = set()
    levels: list[Any] = [statement]
    seen: set[int] = set()
    while levels:
        level = levels.pop()
        if id(level) not in seen:
            seen.add(id(level))
            found |= _check_level(level, levels, core)
    return found


def _check_level(level: Any, nested: list[Any], core: bool = False) -> set[str]:
    """The unscoped tenant tables of one level; appends the statements nested in it."""
    tenant = tenant_tables()
    marked = _explicit(level) or frozenset()
    if isinstance(level, TextClause):
        if _explicit(level) is not None:
            return set()
        return {m.lower() for m in _tenant_words().findall(level.text)}
    if isinstance(level, Insert):
        nested.extend([level.select] if level.select is not None else [])
        nested.extend(getattr(level, "_independent_ctes", ()))
        return set()
    mapped: set[str] = set()
    bare: set[str] = set()
    joined: set[str] = set()
    stack: list[tuple[Any, bool]] = [(child, False) for child in _children(level)]
    seen: set[int] = set()
    while stack:
        element, in_join = stack.pop()
        if isinstance(element, BindParameter) or id(element) in seen:
            continue  # (bound values: most of a big statement's nodes, and leaves)
        seen.add(id(element))
        if isinstance(element, (SelectBase, Insert, Update, Delete, TextClause)):
            nested.append(element)
            continue
        if isinstance(element, ColumnClause):
            # Its FROM (an implicit FROM is no child of a select). A mapped attribute's column
            # is annotated, not its table: the column says the criteria covers that FROM.
            table = element.table
            if table is None:
                continue
            name = getattr(_base_table(table), "name", None)
            if name in tenant:
                (mapped if _orm(element) or _orm(table) else bare).add(name)
            elif not isinstance(table, (Table, Alias)):
                stack.append((table, False))  # a subquery or CTE: its select is a nested level
            continue
        if isinstance(element, (Table, Alias)):
            name = getattr(_base_table(element), "name", None)
            if name in tenant:
                # The criteria does not reach into a join built beforehand (`a.join(b)`,
                # `orm.join(A, B)`) and given to select_from: join with `Select.join` instead.
                (joined if in_join else mapped if _orm(element) else bare).add(name)
                continue  # an ORM alias's bare element is the mapper's business
            if isinstance(element, Table):
                continue
        in_join = in_join or isinstance(element, Join)
        stack.extend((child, in_join) for child in _children(element))
    unscoped = (mapped | bare | joined) if core else (bare - mapped) | joined
    if isinstance(level, (Update, Delete)):
        target = _base_table(level.table).name
        unscoped |= (mapped | bare) - {target}  # a second table: no criteria reaches it
    return unscoped - marked


def _children(element: Any) -> Iterable[Any]:
    if isinstance(element, Select):
        # Not Select.get_children: it adds the FROMs of the columns and the WHERE as their bare
        # tables, which would hide that they came through mapped classes (seen via the columns).
        return itertools.chain(
            HasTraverseInternals.get_children(
                element, omit_attrs=("_from_obj", "_correlate", "_correlate_except")
            ),
            element._from_obj,
        )
    return element.get_children()  # type: ignore[no-any-return]


def _check_insert(insert: Insert, parameters: Any, org_id: uuid.UUID | None) -> None:
    """The `org_id` an INSERT into a tenant table writes is the tenant's (values and rows) or
    comes from the tenant's rows (`Entity.org_id` selected through the criteria)."""
    if _base_table(insert.table).name not in tenant_tables() or _explicit(insert) is not None:
        return
    if insert.select is not None:
        select = insert.select
        names = list(getattr(insert, "_select_names", None) or [])
        source = None
        if isinstance(select, Select) and "org_id" in names:
            source = list(select.selected_columns)[names.index("org_id")]
            while isinstance(source, Label):
                source = source.element
        if isinstance(source, BindParameter) and org_id is not None and source.value == org_id:
            return
        if isinstance(source, ColumnClause) and source.name == "org_id" and _orm(source):
            return
        raise UnscopedStatement(
            f"INSERT … SELECT into {insert.table} writes an org_id the guard cannot check:"
            " select `Entity.org_id` or the tenant's id, or use tenant_statement"
        )
    values: list[Mapping[Any, Any]] = []
    if isinstance(parameters, Mapping):
        values.append(parameters)
    elif isinstance(parameters, Sequence):
        values.extend(parameters)
    written = [getattr(insert, "_values", None) or {}]
    for multi in getattr(insert, "_multi_values", ()):  # .values([{...}, {...}])
        written.extend(r for r in multi if isinstance(r, Mapping))
    for given in written:
        values.append({getattr(k, "key", k): getattr(v, "value", v) for k, v in given.items()})
    for row in values:
        if "org_id" in row and (org_id is None or row["org_id"] != org_id):
            raise TenantMismatch(f"an INSERT into {insert.table} names another organization")


# Verdicts by statement shape: the cache key of the statement as executed, which SQLAlchemy
# memoizes on it and reuses for its compiled cache (bound values are not part of it), and the
# top-level `tenant_statement` mark (execution options are not part of it either).
_VERDICTS: dict[tuple[Any, ...], frozenset[str]] = {}
_VERDICTS_MAX = 10_000


def _unscoped_cached(original: Any, executed: Any) -> frozenset[str]:
    cache_key = executed._generate_cache_key() if isinstance(executed, ClauseElement) else None
    if cache_key is None:  # not cacheable: walk it every time
        return frozenset(unscoped_tables(original))
    key = (cache_key.key, _explicit(original))
    found = _VERDICTS.get(key)
    if found is None:
        found = frozenset(unscoped_tables(original))
        if len(_VERDICTS) >= _VERDICTS_MAX:
            _VERDICTS.clear()
        _VERDICTS[key] = found
    return found


def _guard(original: Any, executed: Any, parameters: Any) -> None:
    """Refuse `original` (as written; `executed` is it with the criteria) if it touches a tenant
    table outside the criteria and `tenant_statement`, or INSERTs another org's rows."""
    unscoped = _unscoped_cached(original, executed)
    if unscoped:
        raise UnscopedStatement(
            f"statement touches tenant table(s) {', '.join(sorted(unscoped))} outside the"
            " session's tenant criteria: write it on mapped classes, or scope it with"
            " tenancy.scoping.tenant_statement"
        )
    if isinstance(original, Insert):
        _check_insert(original, parameters, current_org_id())


def _stamp_new_rows(session: Session, _ctx: Any, _instances: Any) -> None:
    org_id = current_org_id()
    for obj in session.new:
        if not isinstance(obj, TenantScoped):
            continue
        if obj.org_id is None:
            if org_id is None:
                raise TenantMismatch(f"cannot insert {type(obj).__name__} without a tenant")
            obj.org_id = org_id
        elif org_id is not None and obj.org_id != org_id:
            raise TenantMismatch(f"{type(obj).__name__} names another organization")


_SET_TENANT = (
    "SELECT set_config('app.org_id', %(org)s, true), set_config('app.platform', %(p)s, true)"
)
_SET_TENANT_NUMBERED = (
    "SELECT set_config('app.org_id', $1, true), set_config('app.platform', $2, true)"
)


def set_rls_tenant(
    connection: Any, org_id: uuid.UUID | None, platform_key: str = "", *, single: bool = False
) -> None:
    """The transaction of `connection` (Core) runs as `org_id` for row-level security, with
    `app.platform` = `platform_key` ('' outside platform context; the policies accept the
    key's digest, never a mere 'on'; see tenancy/rls.py). Nothing on SQLite. `single`: the
    transaction is the next statement alone, sent with its BEGIN and ROLLBACK when it can be
    (infra/pg_begin.py)."""
    if connection.dialect.name != "postgresql":
        return
    org = str(org_id) if org_id else ""
    # Sent with the transaction's BEGIN, in the same round trip, when the connection has not
    # begun yet (the usual case; infra/pg_begin.py); otherwise (a session joining a
    # transaction already open) as driver SQL: nothing to compile or cache-key. Either way the
    # values are parameters, never text a session could read in pg_stat_activity.
    driver = connection.connection.driver_connection
    if not queue_rls_tenant(driver, org_id, platform_key, single=single):
        connection.exec_driver_sql(_SET_TENANT, {"org": org, "p": platform_key})


def queue_rls_tenant(
    driver_connection: Any,
    org_id: uuid.UUID | None,
    platform_key: str = "",
    *,
    single: bool = False,
) -> bool:
    """Queue the tenant's setting to open the psycopg connection's next transaction, sent with
    its BEGIN (and, `single`, the next statement and ROLLBACK too): infra/pg_begin.py. False
    when it cannot be (not such a connection, or a transaction already open): the caller sets
    it with a statement of its own."""
    org = str(org_id) if org_id else ""
    return open_transaction_with(
        driver_connection, _SET_TENANT_NUMBERED, (org, platform_key), single=single
    )


def _rls_setter(platform_key: str) -> Any:
    """The after-begin hook: the tenant in context (`set_rls_tenant`), and the platform key in
    platform context."""

    def _set_rls_tenant(session: Session, _tx: SessionTransaction, connection: Any) -> None:
        key = platform_key if in_platform_context() else ""
        set_rls_tenant(connection, current_org_id(), key)

    return _set_rls_tenant


def install_tenant_scoping(factory: sessionmaker[Session], platform_key: str) -> None:
    """Scope every session this factory makes to the tenant in context (see the module doc).

    `platform_key` is what platform-context transactions present to RLS on PostgreSQL (the
    first of `Settings.db_platform_keys`).
    """
    event.listen(factory, "do_orm_execute", _scope_to_tenant)
    event.listen(factory, "before_flush", _stamp_new_rows)
    event.listen(factory, "after_begin", _rls_setter(platform_key))
