"""The tenant setting travels with BEGIN (infra/pg_begin.py): one round trip, used once, its
values parameters that no other session can read."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from psycopg.pq import TransactionStatus
from sqlalchemy import text

from infra.pg_begin import BeginWithConnection, open_transaction_with

pytestmark = pytest.mark.postgres

_SETTING = "SELECT current_setting('app.org_id', true)"
_SET = "SELECT set_config('app.org_id', $1, true)"


@pytest.fixture
def conn(backend):
    with BeginWithConnection.connect(backend.owner_url) as connection:
        yield connection


def test_the_opening_statement_runs_with_begin_in_the_transaction(conn) -> None:
    assert open_transaction_with(conn, _SET, ["org-a"])
    assert conn.execute(_SETTING).fetchone() == ("org-a",)
    conn.rollback()
    # Transaction-local: the next transaction starts without it.
    assert conn.execute(_SETTING).fetchone() in {("",), (None,)}
    conn.rollback()


def test_a_queued_opening_no_statement_used_never_opens_a_later_transaction(conn) -> None:
    """The pool's reset on return is a rollback: what a session queued but never used must
    not open the next borrower's transaction with its tenant."""
    assert open_transaction_with(conn, _SET, ["org-a"])
    conn.rollback()  # nothing ran: no transaction was open
    assert conn.execute(_SETTING).fetchone() in {("",), (None,)}
    conn.rollback()
    assert open_transaction_with(conn, _SET, ["org-b"])
    conn.commit()
    assert conn.execute(_SETTING).fetchone() in {("",), (None,)}
    conn.rollback()


def test_values_are_parameters_not_text(conn) -> None:
    hostile = "x', true), set_config('app.platform', 'on"
    assert open_transaction_with(conn, _SET, [hostile])
    assert conn.execute(_SETTING).fetchone() == (hostile,)
    assert conn.execute("SELECT current_setting('app.platform', true)").fetchone() in {
        ("",),
        (None,),
    }
    conn.rollback()


def test_other_sessions_never_see_the_values(conn, backend) -> None:
    """pg_stat_activity shows a statement's text to every session of the same role: the app
    role must not read other tenants' org ids (nor the platform key) there."""
    secret = "org-that-must-not-be-listed"
    slow = "SELECT set_config('app.org_id', $1, true), pg_sleep(0.6)"
    assert open_transaction_with(conn, slow, [secret])
    pid = conn.info.backend_pid
    seen: list[str] = []
    with psycopg.connect(backend.owner_url, autocommit=True) as watcher:
        runner = threading.Thread(target=lambda: conn.execute("SELECT 1"))
        runner.start()
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            row = watcher.execute(
                "SELECT query FROM pg_stat_activity WHERE pid = %s", (pid,)
            ).fetchone()
            seen.append(row[0] if row else "")
        runner.join(10)
    conn.rollback()
    assert any("pg_sleep" in text for text in seen), seen  # the watcher saw the opening
    assert not any(secret in text for text in seen)


def test_a_failing_opening_statement_fails_the_first_query(conn) -> None:
    assert open_transaction_with(conn, "SELECT 1 / $1::int", ["0"])
    with pytest.raises(psycopg.errors.DivisionByZero):
        conn.execute("SELECT 1")
    conn.rollback()
    assert conn.execute("SELECT 2").fetchone() == (2,)
    conn.rollback()


def test_inside_an_open_transaction_the_caller_runs_it_itself(conn) -> None:
    conn.execute("SELECT 1")
    assert not open_transaction_with(conn, _SET, ["org-a"])
    conn.rollback()
    assert not open_transaction_with(object(), _SET, ["org-a"])  # not ours (SQLite...)


def test_a_request_session_sets_its_tenant_without_a_statement_of_its_own(
    make_org, as_tenant, count_queries
) -> None:
    org = make_org()
    with count_queries() as q, as_tenant(org.id) as s:
        setting = s.execute(text(_SETTING), execution_options={"all_tenants": True}).scalar()
    assert setting == str(org.id)
    assert not [sql for sql in q if "set_config" in sql], "the setting went with BEGIN"


def test_an_executemany_opening_the_transaction_carries_it(conn) -> None:
    """psycopg's executemany runs in pipeline mode: the opening joins that pipeline."""
    conn.execute("CREATE TEMP TABLE seen (org text)")
    conn.commit()
    assert open_transaction_with(conn, _SET, ["org-many"])
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO seen SELECT current_setting('app.org_id', true) || %s", [("-1",), ("-2",)]
        )
    assert conn.execute("SELECT org FROM seen ORDER BY org").fetchall() == [
        ("org-many-1",),
        ("org-many-2",),
    ]
    conn.rollback()


# --- A transaction that is one statement: BEGIN, opening, statement, ROLLBACK in one pipeline


def _syncs_sent(conn, statement: str) -> tuple[int, list[tuple]]:
    """How many pipeline syncs / simple queries the client sent to run `statement` (each is a
    round trip), read from libpq's protocol trace; and the statement's rows."""
    import tempfile

    with tempfile.TemporaryFile("w+") as trace:
        conn.pgconn.trace(trace.fileno())
        try:
            rows = conn.execute(statement).fetchall()
        finally:
            conn.pgconn.untrace()
        trace.seek(0)
        sent = [line.split("\t") for line in trace.read().splitlines()]
    # Trace lines: timestamp, F(rontend)/B(ackend), length, message, …
    trips = sum(1 for fields in sent if fields[1] == "F" and fields[3] in ("Sync", "Query"))
    return trips, rows


def test_a_single_statement_transaction_is_one_round_trip_and_ends_with_it(conn) -> None:
    assert open_transaction_with(conn, _SET, ["org-single"], single=True)
    trips, rows = _syncs_sent(conn, _SETTING)
    assert rows == [("org-single",)]  # the opening ran first, in the statement's transaction
    assert trips == 1
    # Rolled back with it: nothing is open, and the next statement has no tenant.
    assert conn.info.transaction_status == TransactionStatus.IDLE
    assert conn.execute(_SETTING).fetchone() in {("",), (None,)}
    conn.rollback()
    # The plain opening, for comparison: BEGIN with it, then the statement, still open.
    assert open_transaction_with(conn, _SET, ["org-plain"])
    trips, rows = _syncs_sent(conn, _SETTING)
    assert (trips, rows) == (2, [("org-plain",)])
    assert conn.info.transaction_status == TransactionStatus.INTRANS
    conn.rollback()


def test_a_single_statement_fails_with_its_own_error_and_the_connection_recovers(conn) -> None:
    assert open_transaction_with(conn, _SET, ["org-single"], single=True)
    with pytest.raises(psycopg.errors.DivisionByZero):
        conn.execute("SELECT 1 / 0")
    conn.rollback()
    assert conn.execute("SELECT 2").fetchone() == (2,)
    conn.rollback()


def test_a_failing_opening_fails_the_single_statement(conn) -> None:
    assert open_transaction_with(conn, "SELECT 1 / $1::int", ["0"], single=True)
    with pytest.raises(psycopg.errors.DivisionByZero):
        conn.execute("SELECT 'never ran'")
    conn.rollback()
    assert conn.execute(_SETTING).fetchone() in {("",), (None,)}
    conn.rollback()


def test_a_queued_single_statement_never_used_is_dropped_by_rollback(conn) -> None:
    assert open_transaction_with(conn, _SET, ["org-a"], single=True)
    conn.rollback()
    trips, rows = _syncs_sent(conn, _SETTING)
    assert rows in ([("",)], [(None,)])
    assert conn.info.transaction_status == TransactionStatus.INTRANS  # a usual transaction
    conn.rollback()


def test_parameters_and_binary_results_of_a_single_statement(conn) -> None:
    assert open_transaction_with(conn, _SET, ["org-b"], single=True)
    with conn.cursor(binary=True) as cur:
        cur.execute("SELECT %s::int + 1, current_setting('app.org_id', true)", [41])
        assert cur.fetchall() == [(42, "org-b")]
    assert conn.info.transaction_status == TransactionStatus.IDLE
