"""Once a request's transaction has committed, nothing may turn its answer into an error.

The after-commit outbox relay is the one thing that runs after the commit: its own database
session or the broker failing leaves the outbox row `pending` for the sweep, and the request
still answers what it did (201), with the row saved.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from certifications.directory.models import Employee
from infra import context
from infra import database as db
from jobs.models import OutboxMessage


def _fail_relay_database(monkeypatch: Any, runtime: Any) -> Any:
    """The relay's own session cannot connect: a real driver error at its first statement."""
    dead = create_engine("sqlite:////nonexistent-certs-dir/relay.db")
    monkeypatch.setattr(db, "new_session", lambda: Session(dead))
    return dead


def _fail_broker(monkeypatch: Any, runtime: Any) -> None:
    def boom(message: Any, **_kw: Any) -> Any:
        raise RuntimeError("broker bug, not a ConnectionError")

    monkeypatch.setattr(runtime.broker, "enqueue", boom)


@pytest.mark.parametrize("fail", [_fail_relay_database, _fail_broker], ids=["database", "broker"])
def test_committed_write_answers_201_when_the_relay_fails(api, org, runtime, monkeypatch, fail):
    role = api.post("/roles", json={"name": "Crew"}).get_json()
    fail(monkeypatch, runtime)
    try:
        resp = api.post("/employees", json={"name": "Ann", "role_id": role["id"]})
        publisher = getattr(runtime, "publisher", None)
        if publisher is not None:  # relayed off the request thread: let it fail first
            assert publisher.flush()
    finally:
        monkeypatch.undo()
    assert resp.status_code == 201, resp.get_data(as_text=True)
    employee_id = resp.get_json()["id"]
    with context.tenant(org.id), db.new_session() as s:
        assert s.get(Employee, uuid.UUID(employee_id)) is not None
        states = s.scalars(
            select(OutboxMessage.status).where(
                OutboxMessage.org_id == org.id, OutboxMessage.actor_name == "fanout_employees"
            )
        ).all()
    assert states == ["pending"], "the sweep sends it later"


def test_committed_write_answers_201_when_closing_the_session_fails(api, org, runtime, monkeypatch):
    """The request's session is closed at teardown, after the answer was decided."""
    close = Session.close

    def broken_close(self: Session) -> None:
        close(self)
        raise RuntimeError("connection reset while returning it to the pool")

    monkeypatch.setattr(Session, "close", broken_close)
    try:
        resp = api.post("/roles", json={"name": "Crew"})
        publisher = getattr(runtime, "publisher", None)
        if publisher is not None:
            assert publisher.flush()
    finally:
        monkeypatch.undo()
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert [r["name"] for r in api.get("/roles").get_json()["items"]] == ["Crew"]
