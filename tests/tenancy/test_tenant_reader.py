"""`tenancy.request.tenant_rows`: one read statement run as the tenant on a Core connection,
without an ORM session (GET /org when auth's cache held the organization)."""

from __future__ import annotations

import logging
import uuid

import pytest
from sqlalchemy import Integer, bindparam, create_engine, event, func, select, text
from sqlalchemy.orm import Session

from infra import context
from infra import database as db
from tenancy.models import Organization
from tenancy.request import NoTenant, request_session, tenant_rows


def _sessions_begun(client, path: str) -> tuple[int, dict]:
    begun: list[object] = []

    def note(session, _tx, _conn) -> None:
        begun.append(session)

    event.listen(Session, "after_begin", note)
    try:
        resp = client.get(path)
    finally:
        event.remove(Session, "after_begin", note)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return len(begun), resp.get_json()


def test_get_org_with_the_organization_cached_begins_no_session(org, api_for) -> None:
    client = api_for(org)
    _, first = _sessions_begun(client, "/org")  # auth keeps the organization
    begun, again = _sessions_begun(client, "/org")
    assert begun == 0  # the row came through a tenant reader
    assert again == first
    assert again["id"] == str(org.id)


def test_get_org_reads_a_change_made_meanwhile(org, api_for) -> None:
    client = api_for(org)
    assert client.get("/org").status_code == 200
    assert client.patch("/org", json={"name": "Renamed"}).status_code == 200
    assert client.get("/org").get_json()["name"] == "Renamed"


def test_a_reader_needs_a_tenant_and_only_a_tenant(app, org) -> None:
    with app.test_request_context():
        with pytest.raises(NoTenant):
            tenant_rows(select(Organization.id))
        # The platform context with a tenant named too: still refused (platform reads keep
        # their sessions, which present the platform key).
        with context.platform(), context.tenant(org.id), pytest.raises(NoTenant):
            tenant_rows(select(Organization.id))


def test_a_reader_joins_the_requests_open_session(app, org) -> None:
    """One connection per request: with a session open, the statement runs in its
    transaction (it sees what the session has flushed and not committed)."""
    with app.test_request_context(), context.tenant(org.id):
        session = request_session()
        session.get(Organization, org.id).name = "Flushed, not committed"
        session.flush()
        rows = tenant_rows(select(Organization.name).where(Organization.id == org.id))
        assert [row.name for row in rows] == ["Flushed, not committed"]
        session.rollback()


@pytest.mark.postgres
def test_a_readers_transaction_sees_its_tenant_only(app, org, make_org) -> None:
    """Row-level security holds for the statement's own transaction: the tenant's row, no
    other; and the tenant is set in it."""
    other = make_org(name="Other org")
    with app.test_request_context(), context.tenant(org.id):
        seen = {row.id for row in tenant_rows(select(Organization.id))}
        setting = tenant_rows(text("SELECT current_setting('app.org_id', true) AS org"))
    assert seen == {org.id}
    assert other.id not in seen
    assert [row.org for row in setting] == [str(org.id)]


@pytest.mark.postgres
def test_get_org_is_one_pipeline_on_the_driver_and_ends_its_transaction(
    org, api_for, runtime, monkeypatch
) -> None:
    """With the organization kept, `GET /org` is one round trip: the organizations statement
    goes with BEGIN (the tenant) and ROLLBACK as one pipeline, straight on the psycopg cursor
    (no SQLAlchemy execution), and the connection is back idle, no transaction left open."""
    from psycopg.pq import TransactionStatus

    from infra import pg_begin

    client = api_for(org)
    assert client.get("/org").status_code == 200  # auth keeps the organization
    pipelines: list[bytes] = []
    after: list[TransactionStatus] = []
    real = pg_begin._single_transaction

    def spy(pgconn, begin, statement, values, query, fmt):
        pipelines.append(query.query)
        rows = yield from real(pgconn, begin, statement, values, query, fmt)
        after.append(pgconn.transaction_status)
        return rows

    monkeypatch.setattr(pg_begin, "_single_transaction", spy)
    executed: list[str] = []
    engine = runtime.engine
    note = lambda _conn, _cursor, statement, *_rest: executed.append(statement)  # noqa: E731
    event.listen(engine, "after_cursor_execute", note)
    try:
        resp = client.get("/org")
    finally:
        event.remove(engine, "after_cursor_execute", note)
    assert resp.status_code == 200
    assert resp.get_json()["id"] == str(org.id)
    assert len(pipelines) == 1, pipelines
    assert b"FROM organizations" in pipelines[0]
    assert after == [TransactionStatus.IDLE]
    assert executed == []  # nothing went through SQLAlchemy's execution


@pytest.mark.postgres
def test_the_driver_answer_is_sqlalchemys_answer(org, api_for, runtime) -> None:
    """Same SQL text as SQLAlchemy's execution of the statement (which `bench api` records for
    its baseline), same JSON."""
    from api.resources.org import _ORG_ROW
    from tenancy import driver_reads

    client = api_for(org)
    assert client.patch("/org", json={"admin_emails": ["a@example.com"]}).status_code == 200
    direct = client.get("/org")
    executed: list[str] = []
    note = lambda _conn, _cursor, statement, *_rest: executed.append(statement)  # noqa: E731
    event.listen(runtime.engine, "after_cursor_execute", note)
    driver_reads.enabled = False
    try:
        through = client.get("/org")
    finally:
        driver_reads.enabled = True
        event.remove(runtime.engine, "after_cursor_execute", note)
    assert direct.get_data() == through.get_data()
    assert direct.get_json()["admin_emails"] == ["a@example.com"]
    found = driver_reads.plan(runtime.engine, _ORG_ROW)
    assert found is not None
    assert [sql for sql in executed if "FROM organizations" in sql] == [found.sql]


@pytest.mark.postgres
def test_only_plain_columns_run_on_the_driver(runtime) -> None:
    """What SQLAlchemy would convert, expand or map goes through SQLAlchemy."""
    from tenancy import driver_reads

    engine = runtime.engine
    assert driver_reads.plan(engine, select(Organization.id, Organization.modules)) is not None
    refused = {
        "text": text("SELECT 1 AS one"),
        "entity": select(Organization),
        "expanding IN": select(Organization.id).where(Organization.id.in_([uuid.uuid4()])),
        "a decrypting type": select(Organization.webhook_secret),
        "a repeated name": select(Organization.id, Organization.id.label("id")),
        "an unnamed expression": select(func.count()),
        "a numeric (its conversion depends on the result)": select(Organization.digest_hour / 2),
    }
    for why, statement in refused.items():
        assert driver_reads.plan(engine, statement) is None, why
    sqlite = create_engine("sqlite://")
    assert driver_reads.plan(sqlite, select(Organization.id)) is None


@pytest.mark.postgres
def test_a_driver_error_is_sqlalchemys_error_and_the_connection_goes_on(app, org) -> None:
    """A statement that fails on the driver raises SQLAlchemy's DBAPIError (what `api.errors`
    answers), and the pooled connection serves the next read."""
    from sqlalchemy.exc import DBAPIError

    from tenancy import driver_reads

    failing = select(
        func.mod(Organization.digest_hour, bindparam("zero", type_=Integer), type_=Integer).label(
            "rest"
        )
    ).where(Organization.id == bindparam("org_id"))
    with app.test_request_context(), context.tenant(org.id):
        assert driver_reads.plan(db.get_engine(), failing) is not None
        with pytest.raises(DBAPIError) as raised:
            tenant_rows(failing, {"zero": 0, "org_id": org.id})
        assert raised.value.orig.sqlstate == "22012"  # division_by_zero
        rows = tenant_rows(select(Organization.name).where(Organization.id == org.id))
    assert [row.name for row in rows] == [org.name]


@pytest.mark.postgres
def test_get_org_on_pooled_connections_killed_meanwhile_runs_again(
    org, api_for, backend, caplog
) -> None:
    """The reader's statement on a connection the server dropped fails: the connection is
    discarded and the read goes again on another (through SQLAlchemy, which flags a dead one
    stale and runs the request again); no idle ping: the kill lands within `IDLE_PING_S` of
    the last checkin."""
    from tests.support.backend import _admin_url, terminate_app_backends

    client = api_for(org)
    expected = client.get("/org").get_json()
    admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            assert client.get("/org").status_code == 200  # checked in just now
            killed = terminate_app_backends(conn, backend)
        with caplog.at_level(logging.WARNING, logger="certs.api"):
            resp = client.get("/org")
    finally:
        admin.dispose()
    assert killed >= 1
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json() == expected
    assert "stale pooled connection" in caplog.text  # the reader met a dead one, ran again


@pytest.mark.postgres
def test_the_plan_cache_starts_over_when_full_and_keeps_planning(runtime, monkeypatch) -> None:
    """Past its bound the cache of plans starts over: a new statement is still kept (not
    compiled again on every request), and each statement's plan is its own."""
    from tenancy import driver_reads

    monkeypatch.setattr(driver_reads, "_plans", {})
    monkeypatch.setattr(driver_reads, "_KEPT", 3)
    engine = runtime.engine
    statements = [select(Organization.id.label(f"c{i}")) for i in range(5)]
    plans = [driver_reads.plan(engine, s) for s in statements]
    assert [p.row._fields for p in plans] == [(f"c{i}",) for i in range(5)]
    assert len(driver_reads._plans) <= 3
    last = statements[-1]
    assert driver_reads.plan(engine, last) is plans[-1]  # kept: the same plan, not a new one
