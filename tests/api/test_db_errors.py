"""Database errors as the client sees them, and the request's retry of transient conflicts.

On PostgreSQL the errors are real server errors (`RAISE … USING ERRCODE`, a real statement
timeout); on SQLite the same psycopg error classes are raised wrapped as SQLAlchemy would.
"""

from __future__ import annotations

from typing import Any

import psycopg.errors
import pytest
from sqlalchemy import text
from sqlalchemy.exc import InterfaceError, OperationalError, ProgrammingError
from sqlalchemy.orm import Session

import certifications.directory.service as directory
from api import unit_of_work
from infra import db_errors


def _raise_sqlstate(session: Session, code: str, message: str) -> None:
    """Make the database fail this statement with SQLSTATE `code`."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text(f"DO $$ BEGIN RAISE EXCEPTION '{message}' USING ERRCODE = '{code}'; END $$")
        )
        raise AssertionError("unreachable")
    raise OperationalError("DO ...", None, psycopg.errors.lookup(code)(message))


@pytest.fixture
def no_wait(monkeypatch):
    monkeypatch.setattr(unit_of_work, "WAIT_MAX_S", 0.001)


def test_deadlock_reruns_the_request_in_a_fresh_transaction(api, monkeypatch, no_wait):
    """The first attempt writes the role, then deadlocks: the request runs again from scratch
    and answers 201 — one role, not a 409 against the first attempt's rolled-back row."""
    create = directory.create
    calls: list[int] = []

    def deadlock_once(session: Session, kind: Any, data: dict[str, Any]) -> Any:
        row = create(session, kind, data)
        session.flush()
        calls.append(1)
        if len(calls) == 1:
            _raise_sqlstate(session, "40P01", "deadlock detected")
        return row

    monkeypatch.setattr(directory, "create", deadlock_once)
    resp = api.post("/roles", json={"name": "Rigger", "external_id": "R-9"})
    assert resp.status_code == 201, resp.get_json()
    assert len(calls) == 2
    roles = api.get("/roles").get_json()["items"]
    assert [(r["name"], r["id"]) for r in roles] == [("Rigger", resp.get_json()["id"])]


@pytest.mark.parametrize("code", ["40P01", "40001"])
def test_conflict_that_keeps_happening_is_409_conflict_retry(api, monkeypatch, no_wait, code):
    calls: list[int] = []

    def always(session: Session, kind: Any, data: dict[str, Any]) -> Any:
        calls.append(1)
        _raise_sqlstate(session, code, "could not serialize access")

    monkeypatch.setattr(directory, "create", always)
    resp = api.post("/roles", json={"name": "Rigger"})
    assert len(calls) == unit_of_work.ATTEMPTS
    assert resp.status_code == 409, resp.get_json()
    body = resp.get_json()
    assert body["code"] == "conflict_retry"
    assert body["http_status"] == 409
    assert "nothing was written" in body["message"]
    assert resp.headers["Retry-After"] == "1"
    assert api.get("/roles").get_json()["items"] == []


@pytest.mark.postgres
def test_real_statement_timeout_is_503_statement_timeout(api, monkeypatch):
    calls: list[int] = []

    def slow(session: Session, kind: Any, data: dict[str, Any]) -> Any:
        calls.append(1)
        session.execute(text("SET LOCAL statement_timeout = 1"))
        session.execute(text("SELECT pg_sleep(1)"))

    monkeypatch.setattr(directory, "create", slow)
    resp = api.post("/roles", json={"name": "Rigger"})
    _assert_statement_timeout(resp)
    assert calls == [1], "a statement timeout is not retried"
    assert api.get("/roles").get_json()["items"] == []


def test_statement_timeout_is_503_statement_timeout(api, monkeypatch):
    def slow(session: Session, kind: Any, data: dict[str, Any]) -> Any:
        _raise_sqlstate(session, "57014", "canceling statement due to statement timeout")

    monkeypatch.setattr(directory, "create", slow)
    _assert_statement_timeout(api.post("/roles", json={"name": "Rigger"}))


def _assert_statement_timeout(resp: Any) -> None:
    assert resp.status_code == 503, resp.get_json()
    body = resp.get_json()
    assert body["code"] == "statement_timeout"
    assert body["http_status"] == 503
    assert "unavailable" not in body["message"]
    assert resp.headers["Retry-After"] == "5"


def test_other_server_errors_are_not_called_unavailable(api, monkeypatch):
    def full(session: Session, kind: Any, data: dict[str, Any]) -> Any:
        _raise_sqlstate(session, "53100", "could not extend file: No space left on device")

    monkeypatch.setattr(directory, "create", full)
    resp = api.post("/roles", json={"name": "Rigger"})
    assert resp.status_code == 503
    assert resp.get_json()["code"] == 503
    assert "unavailable" not in resp.get_json()["message"]


def _wrapped(exc: Exception, cls: type = OperationalError, **kw: Any) -> Any:
    return cls("SELECT 1", None, exc, **kw)


@pytest.mark.parametrize(
    ("exc", "retryable", "timeout", "disconnect"),
    [
        (_wrapped(psycopg.errors.DeadlockDetected("x")), True, False, False),
        (_wrapped(psycopg.errors.SerializationFailure("x")), True, False, False),
        # A conflict reported on a connection that then broke cannot be retried in it.
        (
            _wrapped(psycopg.errors.DeadlockDetected("x"), connection_invalidated=True),
            False,
            False,
            True,
        ),
        (_wrapped(psycopg.errors.QueryCanceled("x")), False, True, False),
        (_wrapped(psycopg.errors.AdminShutdown("x")), False, False, True),
        (_wrapped(psycopg.errors.TooManyConnections("x")), False, False, True),
        (_wrapped(psycopg.errors.ConnectionFailure("x")), False, False, True),
        (_wrapped(psycopg.OperationalError("connection refused")), False, False, True),
        (
            _wrapped(psycopg.InterfaceError("the connection is closed"), InterfaceError),
            False,
            False,
            True,
        ),
        (_wrapped(psycopg.errors.DiskFull("x")), False, False, False),
        (_wrapped(psycopg.errors.UndefinedTable("x"), ProgrammingError), False, False, False),
        (ValueError("not a database error"), False, False, False),
    ],
)
def test_classification(exc, retryable, timeout, disconnect):
    assert db_errors.is_retryable(exc) is retryable
    assert db_errors.is_statement_timeout(exc) is timeout
    assert db_errors.is_disconnect(exc) is disconnect
