"""A transaction's opening statement sent with its BEGIN, in one round trip (PostgreSQL).

Every transaction first sets its tenant for row-level security (`tenancy.scoping`). psycopg
starts a transaction lazily: the first statement is preceded by its own `BEGIN` round trip,
so a one-query request paid four (BEGIN, the tenant's `set_config`, the query, ROLLBACK).
`BeginWithConnection` sends `BEGIN` and the opening statement together, as a libpq pipeline
(two queries and a sync in one write, their results read back at once): three round trips, and
no SQLAlchemy execution for the setting.

A read that is a single statement (`tenancy.request.tenant_rows`) goes further: queued with
`single=True`, the opening makes the transaction the next statement alone, and the connection's
cursor (`SingleStatementCursor`) sends `BEGIN`, the opening, the statement and `ROLLBACK` as one
pipeline: one round trip instead of three (a `GET /org` spent a third of its database CPU on
the other two). The statement's results are the cursor's, as after a plain `execute`; the
connection is idle afterwards, so the rollback SQLAlchemy sends on close has nothing to do.

Safety, since the opening statement carries a tenant:
* its values stay bound parameters (`$1`, `$2`), never SQL text: the statement's text, which
  `pg_stat_activity` shows to every session of the app role and statement logs record, names
  neither the organization nor the platform key (docs/security.md: org ids cannot be listed
  by the app role; the platform key is a secret);
* it is used once: the transaction that starts next consumes it, and `commit`/`rollback`
  (which the pool's reset on return always calls) drop one no statement consumed, so it can
  never open a later transaction on the pooled connection;
* if psycopg's transaction start ever changes shape (the override below leans on psycopg's
  `_start_query`, a private method, and its `generators`), the opening statement is simply not
  sent and every query of the transaction runs with no tenant, which row-level security
  answers with no rows and refused writes; the PostgreSQL suite fails loudly on that, nothing
  leaks;
* a single-statement transaction is only ever the one statement it was queued for: if the
  cursor's `_execute_gen` (private too) is not the path a statement takes, the queued opening
  starts the transaction the usual way instead (three round trips, the same answer), and a
  second statement after a single one starts a transaction of its own, with no tenant.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Sequence
from functools import partial
from typing import Any

import psycopg
from psycopg import generators
from psycopg.pq import ExecStatus, Format, TransactionStatus


class BeginWithConnection(psycopg.Connection[Any]):
    """A psycopg connection whose next transaction opens with a queued statement."""

    _opening: tuple[bytes, list[bytes]] | None = None
    _single = False  # the queued transaction is the next statement alone
    _cursor_begins = False  # while a single statement's cursor starts: it sends BEGIN itself

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cursor_factory = SingleStatementCursor

    def open_next_transaction_with(
        self, statement: bytes, values: list[bytes], *, single: bool = False
    ) -> None:
        self._opening = (statement, values)
        self._single = single

    def take_single_statement(self) -> tuple[bytes, bytes, list[bytes]] | None:
        """(BEGIN, opening, its values) when the next statement is a transaction of its own
        that its cursor sends whole; None: the statement starts its transaction as usual."""
        single, self._single = self._single, False
        opening = self._opening
        if (
            not single
            or opening is None
            or self._autocommit
            or self._pipeline is not None
            or self.pgconn.transaction_status != TransactionStatus.IDLE
        ):
            return None
        self._check_connection_ok()
        self._opening = None
        return (self._get_tx_start_command(), *opening)

    def _start_query(self) -> Generator[Any, Any, None]:
        if self._cursor_begins:
            return
        self._single = False
        opening, self._opening = self._opening, None
        idle = self.pgconn.transaction_status == TransactionStatus.IDLE
        if opening is None or self._autocommit or not idle:
            yield from super()._start_query()
            return
        if self._pipeline is not None:
            # Already in pipeline mode (psycopg's `executemany` uses it): BEGIN goes as psycopg
            # sends it, and the statement joins the pipeline as psycopg's own commands do.
            yield from super()._start_query()
            statement, values = opening
            self._pipeline.command_queue.append(
                partial(self.pgconn.send_query_params, statement, values)
            )
            self._pipeline.result_queue.append(None)
            return
        self._check_connection_ok()
        pgconn = self.pgconn
        pgconn.enter_pipeline_mode()
        try:
            error = yield from _begin_with(pgconn, self._get_tx_start_command(), *opening)
        except BaseException:
            with contextlib.suppress(Exception):  # the connection is broken: keep that error
                pgconn.exit_pipeline_mode()
            raise
        pgconn.exit_pipeline_mode()
        if error is not None:
            raise psycopg.errors.error_from_result(error, encoding=pgconn._encoding)

    def commit(self) -> None:
        self._opening, self._single = None, False
        super().commit()

    def rollback(self) -> None:
        self._opening, self._single = None, False
        super().rollback()


class SingleStatementCursor(psycopg.Cursor[Any]):
    """psycopg's cursor, except for a statement its connection queued as a transaction of its
    own: `BEGIN`, the opening, the statement and `ROLLBACK` in one pipeline."""

    def _execute_gen(
        self,
        query: Any,
        params: Any = None,
        *,
        prepare: bool | None = None,
        binary: bool | None = None,
    ) -> Generator[Any, Any, None]:
        conn = self._conn
        single = None
        if isinstance(conn, BeginWithConnection):
            single = conn.take_single_statement()
        if single is None or not isinstance(conn, BeginWithConnection):
            yield from super()._execute_gen(query, params, prepare=prepare, binary=binary)
            return
        conn._cursor_begins = True
        try:
            yield from self._start_query(query)  # the cursor's reset; the connection's start
        finally:  # sends nothing
            conn._cursor_begins = False
        pgq = self._convert_query(query, params)
        self._query = pgq
        fmt = self.format if binary is None else (Format.BINARY if binary else Format.TEXT)
        results = yield from _single_transaction(self._pgconn, *single, pgq, fmt)
        self._check_results(results)
        self._set_results(results)
        self._last_query = query


def _single_transaction(
    pgconn: Any, begin: bytes, statement: bytes, values: list[bytes], query: Any, fmt: Format
) -> Generator[Any, Any, list[Any]]:
    """BEGIN, `statement`, `query` and ROLLBACK in one pipeline: `query`'s results. An error
    of BEGIN or `statement` is raised (`query` did not run); `query`'s own is in its results."""
    pgconn.enter_pipeline_mode()
    try:
        pgconn.send_query_params(begin, None)
        pgconn.send_query_params(statement, values)
        pgconn.send_query_params(
            query.query,
            query.params,
            param_formats=query.formats,
            param_types=query.types,
            result_format=fmt,
        )
        pgconn.send_query_params(b"ROLLBACK", None)
        pgconn.pipeline_sync()
        yield from generators.send(pgconn)
        answers: list[list[Any]] = []
        while True:
            results = yield from generators.fetch_many(pgconn)
            if results and results[0].status == ExecStatus.PIPELINE_SYNC:
                break
            answers.append(results)
    except BaseException:
        with contextlib.suppress(Exception):  # the connection is broken: keep that error
            pgconn.exit_pipeline_mode()
        raise
    pgconn.exit_pipeline_mode()
    if len(answers) != 4:
        raise psycopg.errors.InternalError(f"{len(answers)} answers to a 4-command pipeline")
    for results in answers[:2]:
        for result in results:
            if result.status == ExecStatus.FATAL_ERROR:
                raise psycopg.errors.error_from_result(result, encoding=pgconn._encoding)
    return answers[2]


def _begin_with(
    pgconn: Any, begin: bytes, statement: bytes, values: list[bytes]
) -> Generator[Any, Any, Any]:
    """BEGIN and `statement` in one pipeline; their first error (None if both ran)."""
    pgconn.send_query_params(begin, None)
    pgconn.send_query_params(statement, values)
    pgconn.pipeline_sync()
    yield from generators.send(pgconn)
    error = None
    for _ in range(3):  # BEGIN's results, the statement's, the sync
        for result in (yield from generators.fetch_many(pgconn)):
            if result.status == ExecStatus.PIPELINE_SYNC:
                return error
            if result.status == ExecStatus.FATAL_ERROR and error is None:
                error = result
    raise psycopg.errors.InternalError("no pipeline sync after BEGIN and its opening statement")


def open_transaction_with(
    driver_connection: Any, statement: str, values: Sequence[str], *, single: bool = False
) -> bool:
    """Queue `statement` (`$1`, `$2`… placeholders for `values`, sent as text parameters) to
    open the connection's next transaction, if it is a `BeginWithConnection` with none open
    yet. False: the caller runs the statement itself. `single`: that transaction is the next
    statement alone, sent with them and rolled back in the same round trip."""
    if not isinstance(driver_connection, BeginWithConnection):
        return False
    if driver_connection.pgconn.transaction_status != TransactionStatus.IDLE:
        return False
    driver_connection.open_next_transaction_with(
        statement.encode(), [value.encode() for value in values], single=single
    )
    return True
