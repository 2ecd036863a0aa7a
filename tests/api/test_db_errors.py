"""Database errors as the client sees them, and the request's retry of transient conflicts.

On PostgreSQL the errors are real server errors (`RAISE … USING ERRCODE`, a real statement
timeout); on SQLite the same psycopg error classes are raised wrapped as SQLAlchemy would.
"""

from __future__ import annotations

from typing import Any

import psycopg.errors
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

import certifications.directory.service as directory
from api import unit_of_work


def _raise_sqlstate(session: Session, code: str, message: str) -> None:
    """Make the database fail this statement with SQLSTATE `code`."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text(f"DO $$ BEGIN RAISE EXCEPTION '{message}' USING ERRCODE = '{code}'; END $$")
        )
        raise AssertionError("unreachable")
    raise OperationalError("DO ...", None, psycopg.errors.lookup(code)(message))


@pytest.fixture
def no_wait(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(unit_of_work, "WAIT_MAX_S", 0.001)


def test_deadlock_reruns_the_request_in_a_fresh_transaction(api, monkeypatch, no_wait):  # type: ignore[no-untyped-def]
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
