"""GET /metrics: request counters and latency, database gauges (PostgreSQL: the function of
migration 0007, as the RLS-bound app role), worker message counters."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import dramatiq
import pytest
from dramatiq.broker import MessageProxy
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, event, text, update

from api.metrics import DatabaseGauges, database_families
from infra import context
from infra import database as db
from jobs.models import Job, OutboxMessage
from tests.support.backend import OWNER_ROLE
from tests.support.suite import BACKEND
from workers.metrics import MESSAGES, WorkerMetrics


def scrape(api: Any) -> dict[str, list[Any]]:
    DatabaseGauges.forget()
    resp = api.get("/metrics")
    assert resp.status_code == 200
    assert resp.content_type.startswith("text/plain")
    families: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(resp.get_data(as_text=True)):
        families.setdefault(family.name, []).extend(family.samples)
    return families


def value(families: dict[str, list[Any]], sample: str, **labels: str) -> float:
    return sum(
        s.value
        for samples in families.values()
        for s in samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_requests_are_counted_by_endpoint_and_status(api) -> None:  # type: ignore[no-untyped-def]
    before = scrape(api)
    for _ in range(3):
        assert api.get("/org").status_code == 200
    assert api.get(f"/jobs/{uuid.uuid4()}").status_code == 404
    after = scrape(api)
    ok = {"method": "GET", "status": "200"}
    org_endpoint = next(
        s.labels["endpoint"]
        for s in after["certs_http_requests"]
        if "Organization" in s.labels["endpoint"] and s.labels["status"] == "200"
    )
    assert "/" not in org_endpoint, "endpoint names, never raw paths (ids explode cardinality)"
    count = "certs_http_requests_total"
    delta = value(after, count, endpoint=org_endpoint, **ok) - value(
        before, count, endpoint=org_endpoint, **ok
    )
    assert delta == 3
    assert value(after, count, status="404") - value(before, count, status="404") == 1
    hist = "certs_http_request_duration_seconds_count"
    assert (
        value(after, hist, endpoint=org_endpoint) - value(before, hist, endpoint=org_endpoint) == 3
    )


def test_outbox_backlog_and_age_of_the_oldest_entry(api, org) -> None:  # type: ignore[no-untyped-def]
    row_id = uuid.uuid4()
    with context.platform(), db.new_session() as s:
        s.add(
            OutboxMessage(
                id=row_id,
                org_id=org.id,
                actor_name="metrics_probe",
                payload={},
                status="pending",
                created_at=db.utcnow() - timedelta(hours=2),
            )
        )
        s.commit()
    try:
        families = scrape(api)
        assert value(families, "certs_metrics_database_up") == 1
        assert value(families, "certs_outbox_backlog") >= 1
        assert value(families, "certs_outbox_oldest_age_seconds") >= 2 * 3600 - 60
    finally:  # never leave a row the other tests' drain() would wait for
        with context.platform(), db.new_session() as s:
            s.execute(
                update(OutboxMessage).where(OutboxMessage.id == row_id).values(status="failed")
            )
            s.commit()


def test_jobs_by_state_count_every_organization(api, make_org, as_tenant) -> None:  # type: ignore[no-untyped-def]
    # A state of its own, so jobs other tests leave running cannot move the figure.
    state = f"probe-{uuid.uuid4().hex[:10]}"
    for other in (make_org(), make_org()):  # row-level security admits one org at a time
        with as_tenant(other.id) as s:
            s.add(Job(kind="metrics-test", state=state))
            s.commit()
    after = scrape(api)
    assert value(after, "certs_metrics_database_up") == 1
    assert value(after, "certs_jobs", state=state) == 2
    assert "certs_notifications" in after


def test_a_scrape_runs_no_ddl() -> None:
    """The gauges are queries (PostgreSQL: one call of the migration's function), never DDL."""
    statements: list[str] = []

    def record(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    engine = db.get_engine()
    event.listen(engine, "before_cursor_execute", record)
    try:
        families = database_families()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert next(f for f in families if f.name == "certs_metrics_database_up").samples[0].value == 1
    ddl = ("CREATE", "ALTER", "DROP", "GRANT", "REVOKE")
    assert not [s for s in statements if s.lstrip().upper().startswith(ddl)], statements
    if BACKEND.is_postgres:
        assert statements == ["SELECT gauge, label, value FROM certs_metrics_gauges()"]


@pytest.mark.postgres
def test_the_gauges_function_counts_every_tenant_for_the_app_role(make_org, as_tenant) -> None:  # type: ignore[no-untyped-def]
    """Migration 0007's function: owned by the owner, SECURITY DEFINER with a fixed
    search_path, executable by the app role (not PUBLIC); as the RLS-bound app role it returns
    the totals over every organization, which the app role itself cannot see."""
    owner = create_engine(BACKEND.owner_url)
    try:
        with owner.connect() as conn:
            fn = conn.execute(
                text(
                    "SELECT p.prosecdef, p.proconfig, pg_get_userbyid(p.proowner) AS owner, "
                    "has_function_privilege(:app, p.oid, 'EXECUTE') AS app_may, "
                    "has_function_privilege('public', p.oid, 'EXECUTE') AS public_may "
                    "FROM pg_proc p WHERE p.proname = 'certs_metrics_gauges'"
                ),
                {"app": BACKEND.app_role},
            ).one_or_none()
    finally:
        owner.dispose()
    assert fn is not None, "migration 0007 creates certs_metrics_gauges()"
    assert fn.prosecdef
    assert fn.owner == OWNER_ROLE
    assert any(c.startswith("search_path=") for c in fn.proconfig)
    assert fn.app_may
    assert not fn.public_may

    state = f"probe-{uuid.uuid4().hex[:10]}"
    first, second = make_org(), make_org()
    for org, n in ((first, 2), (second, 3)):
        with as_tenant(org.id) as s:
            s.add_all([Job(kind="metrics-test", state=state) for _ in range(n)])
            s.commit()
    with db.get_engine().connect() as conn:  # the app's own connection: the app role
        assert conn.scalar(text("SELECT current_user")) == BACKEND.app_role
        conn.execute(text("SELECT set_config('app.org_id', :o, true)"), {"o": str(first.id)})
        own = conn.scalar(text("SELECT count(*) FROM jobs WHERE state = :s"), {"s": state})
        totals = {
            (gauge, label): n
            for gauge, label, n in conn.execute(
                text("SELECT gauge, label, value FROM certs_metrics_gauges()")
            )
        }
        # The caller's tenant setting is left as it was.
        assert conn.scalar(text("SELECT current_setting('app.org_id')")) == str(first.id)
        conn.rollback()
    assert own == 2, "the app role sees only its organization's rows"
    assert totals[("jobs", state)] == 5, "the function counts every organization's"
    assert {"outbox_backlog", "outbox_oldest_age_seconds"} <= {g for g, _ in totals}


def test_worker_middleware_counts_messages_by_actor_and_outcome() -> None:
    middleware = WorkerMetrics()
    broker = dramatiq.get_broker()

    def run(exception: BaseException | None, failed: bool = False) -> None:
        proxy = MessageProxy(dramatiq.Message("default", "probe_actor", (), {}, {}))
        middleware.before_process_message(broker, proxy)
        if failed:
            proxy.fail()
        middleware.after_process_message(broker, proxy, exception=exception)

    def count(outcome: str) -> float:
        return MESSAGES.labels("probe_actor", outcome)._value.get()

    done, retried, failed = count("done"), count("retried"), count("failed")
    run(None)
    run(RuntimeError("boom"))
    run(RuntimeError("boom"), failed=True)
    assert (count("done") - done, count("retried") - retried, count("failed") - failed) == (1, 1, 1)
