"""A transaction's opening statement sent with its BEGIN, in one round trip (PostgreSQL).

Every transaction first sets its tenant for row-level security (`tenancy.scoping`). psycopg
starts a transaction lazily: the first statement is preceded by its own `BEGIN` round trip,
so a one-query request paid four (BEGIN, the tenant's `set_config`, the query, ROLLBACK).
`BeginWithConnection` sends `BEGIN` and the opening statement together, as a libpq pipeline
(two queries and a sync in one write, their results read back at once): three round trips, and
no SQLAlchemy execution for the setting.

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
  leaks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Sequence
from functools import partial
from typing import Any

import psycopg
from psycopg import generators
from psycopg.pq import ExecStatus, TransactionStatus


class BeginWithConnection(psycopg.Connection[Any]):
    """A psycopg connection whose next transaction opens with a queued statement."""

    _opening: tuple[bytes, list[bytes]] | None = None

    def open_next_transaction_with(self, statement: bytes, values: list[bytes]) -> None:
        self._opening = (statement, values)

    def _start_query(self) -> Generator[Any, Any, None]:
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
        self._opening = None
        super().commit()

    def rollback(self) -> None:
        self._opening = None
        super().rollback()


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


def open_transaction_with(driver_connection: Any, statement: str, values: Sequence[str]) -> bool:
    """Queue `statement` (`$1`, `$2`… placeholders for `values`, sent as text parameters) to
    open the connection's next transaction, if it is a `BeginWithConnection` with none open
    yet. False: the caller runs the statement itself."""
    if not isinstance(driver_connection, BeginWithConnection):
        return False
    if driver_connection.pgconn.transaction_status != TransactionStatus.IDLE:
        return False
    driver_connection.open_next_transaction_with(
        statement.encode(), [value.encode() for value in values]
    )
    return True
