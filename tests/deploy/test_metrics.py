"""GET /metrics: request counters and latency, database gauges, worker message counters."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from api.metrics import DatabaseCollector
from infra import context
from infra import database as db
from jobs.models import Job, OutboxMessage
from workers.metrics import MESSAGES, WorkerMetrics


def scrape(api: Any) -> dict[str, list[Any]]:
    DatabaseCollector.forget()
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
    assert value(after, "certs_jobs", state=state) == 2
    assert "certs_notifications" in after


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
