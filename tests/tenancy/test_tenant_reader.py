"""`tenancy.request.tenant_rows`: one read statement run as the tenant on a Core connection,
without an ORM session (GET /org when auth's cache held the organization)."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import create_engine, event, select, text
from sqlalchemy.orm import Session

from infra import context
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
def test_get_org_ends_its_transaction_with_its_statement(org, api_for, runtime) -> None:
    """With the organization kept, `GET /org` is one round trip: the organizations statement
    comes back with its transaction already rolled back (BEGIN with the tenant, the SELECT and
    ROLLBACK went as one pipeline), not left open for a ROLLBACK of its own."""
    from psycopg.pq import TransactionStatus

    client = api_for(org)
    assert client.get("/org").status_code == 200  # auth keeps the organization
    seen: list[tuple[str, TransactionStatus]] = []

    def note(_conn, cursor, statement, _params, _context, _many) -> None:
        seen.append((statement, cursor.connection.info.transaction_status))

    engine = runtime.engine
    event.listen(engine, "after_cursor_execute", note)
    try:
        resp = client.get("/org")
    finally:
        event.remove(engine, "after_cursor_execute", note)
    assert resp.status_code == 200
    assert [status for sql, status in seen if "FROM organizations" in sql] == [
        TransactionStatus.IDLE
    ], seen


@pytest.mark.postgres
def test_get_org_on_pooled_connections_killed_meanwhile_runs_again(
    org, api_for, backend, caplog
) -> None:
    """The reader's first statement on a connection the server dropped fails before anything
    reached it: flagged stale, the request runs again on a fresh one (no idle ping: the kill
    lands within `IDLE_PING_S` of the last checkin)."""
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
