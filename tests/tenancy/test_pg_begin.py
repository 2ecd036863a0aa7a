"""The tenant setting travels with BEGIN (infra/pg_begin.py): one round trip, used once, its
values parameters that no other session can read."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
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
