"""Metrics: request metrics (prometheus-flask-exporter, gunicorn multiprocess included), the
database gauges (PostgreSQL: the function of migration 0008, as the RLS-bound app role), and the
worker's message metrics (Dramatiq's Prometheus middleware under `certs worker`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, event, text, update

from api.metrics import DatabaseGauges, database_families
from infra import context
from infra import database as db
from infra.settings import load_settings
from jobs import catalog
from jobs.models import Job, OutboxMessage
from tests.support.backend import OWNER_ROLE
from tests.support.suite import BACKEND, SUBPROCESS_ENV, TEST_ENV, free_port
from workers.metrics import add_message_metrics, prometheus_environment

ROOT = Path(__file__).resolve().parents[2]
Families = dict[str, list[Any]]


def parse(body: str) -> Families:
    families: Families = {}
    for family in text_string_to_metric_families(body):
        families.setdefault(family.name, []).extend(family.samples)
    return families


def scrape(api: Any) -> Families:
    DatabaseGauges.forget()
    resp = api.get("/metrics")
    assert resp.status_code == 200
    assert resp.content_type.startswith("text/plain")
    return parse(resp.get_data(as_text=True))


def value(families: Families, sample: str, **labels: str) -> float:
    return sum(
        s.value
        for samples in families.values()
        for s in samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    )


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url)  # noqa: S310 - loopback
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:  # noqa: S310 - loopback
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def _wait_for(url: str, proc: subprocess.Popen[bytes], timeout: float = 45) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{proc.args} exited with {proc.returncode}"
        try:
            if _get(url)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(url)


def _stop(proc: subprocess.Popen[bytes], log: Path) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]


# --- requests ---------------------------------------------------------------------------------

HIST_COUNT = "certs_http_request_duration_seconds_count"


def _org_endpoint(families: Families) -> str:
    return next(
        s.labels["endpoint"]
        for s in families["certs_http_request_duration_seconds"]
        if "Organization" in s.labels["endpoint"] and s.labels["status"] == "200"
    )


def test_requests_are_counted_by_endpoint_and_status(api) -> None:
    before = scrape(api)
    for _ in range(3):
        assert api.get("/org").status_code == 200
    assert api.get(f"/jobs/{uuid.uuid4()}").status_code == 404
    after = scrape(api)
    org_endpoint = _org_endpoint(after)
    assert "/" not in org_endpoint, "endpoint names, never raw paths (ids explode cardinality)"
    ok = {"endpoint": org_endpoint, "method": "GET", "status": "200"}
    assert value(after, HIST_COUNT, **ok) - value(before, HIST_COUNT, **ok) == 3
    assert value(after, HIST_COUNT, status="404") - value(before, HIST_COUNT, status="404") == 1
    total = "certs_http_request_total"
    assert (
        value(after, total, method="GET", status="200")
        - value(before, total, method="GET", status="200")
        == 3
    )
    scraped = [
        s for s in after["certs_http_request_duration_seconds"] if "metrics" in s.labels["endpoint"]
    ]
    assert not scraped, "scrapes are not traffic"


def test_requests_are_merged_over_gunicorn_workers(tmp_path, org, token_for) -> None:
    """gunicorn.conf.py with 2 workers: every worker's requests are in every scrape."""
    port, prom_dir = free_port(), tmp_path / "prom"
    env = {
        **SUBPROCESS_ENV,
        "GUNICORN_WORKERS": "2",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "PROMETHEUS_MULTIPROC_DIR": str(prom_dir),
        "METRICS_DB_CACHE_SECONDS": "0",
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
    }
    log = tmp_path / "gunicorn.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(base + "/healthz", proc)
        token = token_for(org)

        def pids(kind: str) -> set[str]:
            return {f.stem.rsplit("_", 1)[-1] for f in prom_dir.glob(f"{kind}_*.db")}

        # Each worker writes the exporter's info gauge when it creates the app: both are up.
        deadline = time.monotonic() + 30
        while len(pids("gauge_max")) < 2:
            assert time.monotonic() < deadline, "the second gunicorn worker did not start"
            time.sleep(0.2)
        # Concurrent requests until both workers have served some (2 sync workers, 8 clients).
        sent = 0
        with ThreadPoolExecutor(max_workers=8) as pool:
            while len(pids("histogram")) < 2:
                assert sent < 400, f"one worker served everything: {pids('histogram')}"
                batch = list(pool.map(lambda _: _get(base + "/api/v1/org", token)[0], range(16)))
                assert batch == [200] * 16
                sent += 16
        assert _get(f"{base}/api/v1/jobs/{uuid.uuid4()}", token)[0] == 404
        for _ in range(4):  # whichever worker answers the scrape reports every worker's figures
            status, body = _get(base + "/metrics")
            assert status == 200
            families = parse(body)
            ok = {"endpoint": _org_endpoint(families), "method": "GET", "status": "200"}
            assert value(families, HIST_COUNT, **ok) == sent
            assert value(families, HIST_COUNT, status="404") == 1
            assert value(families, "certs_http_request_total", status="200") >= sent
            assert value(families, "certs_metrics_database_up") == 1
    finally:
        _stop(proc, log)


# --- database gauges --------------------------------------------------------------------------


def test_outbox_backlog_and_age_of_the_oldest_entry(api, org) -> None:
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


def test_jobs_by_state_count_every_organization(api, make_org, as_tenant) -> None:
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

    def record(conn, cursor, statement, *args) -> None:
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
def test_the_gauges_function_counts_every_tenant_for_the_app_role(make_org, as_tenant) -> None:
    """Migration 0008's function: owned by the owner, SECURITY DEFINER with a fixed
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
    assert fn is not None, "migration 0008 creates certs_metrics_gauges()"
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


# --- worker messages --------------------------------------------------------------------------


def test_worker_metrics_are_dramatiqs_middleware_on_the_settings_port() -> None:
    settings = load_settings({**TEST_ENV, "WORKER_METRICS_PORT": "9555"})
    assert prometheus_environment(settings, "/tmp/prom") == {  # noqa: S108 - a name only
        "dramatiq_prom_db": "/tmp/prom",  # noqa: S108
        "dramatiq_prom_host": "0.0.0.0",  # noqa: S104
        "dramatiq_prom_port": "9555",
    }
    from dramatiq.brokers.stub import StubBroker
    from dramatiq.middleware.prometheus import Prometheus

    broker = StubBroker()
    add_message_metrics(broker, settings)
    add_message_metrics(broker, settings)
    assert sum(isinstance(m, Prometheus) for m in broker.middleware) == 1
    off = load_settings({**TEST_ENV, "WORKER_METRICS_PORT": "0"})
    assert prometheus_environment(off, "/tmp/prom") == {}  # noqa: S108
    quiet = StubBroker()
    add_message_metrics(quiet, off)
    assert not any(isinstance(m, Prometheus) for m in quiet.middleware)


@pytest.mark.redis
def test_certs_worker_counts_done_and_failed_messages(tmp_path, org, settings) -> None:
    """`certs worker` (2 processes): Dramatiq's Prometheus middleware counts what they process
    and its exposition server merges both processes' figures on WORKER_METRICS_PORT."""
    from dramatiq.brokers.redis import RedisBroker

    port, namespace = free_port(), f"certs-metrics-{uuid.uuid4().hex[:8]}"
    env = {
        **SUBPROCESS_ENV,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
        "WORKER_METRICS_PORT": str(port),
        "REDIS_NAMESPACE": namespace,  # its own queues: no other worker takes these messages
        "PYTHONPATH": str(ROOT),
    }
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "worker", "--processes", "2", "--threads", "1"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/metrics"
    broker = RedisBroker(url=settings.redis_url, namespace=namespace)
    try:
        _wait_for(url, proc)
        queue = catalog.TICK_ORG.queue_name
        broker.declare_queue(queue)

        def send(kwargs: dict[str, Any], **options: Any) -> None:
            broker.enqueue(dramatiq.Message(queue, "tick_org", (), kwargs, options))

        for _ in range(3):
            send({"org_id": str(org.id)})
        for _ in range(2):  # an unknown argument: TypeError in the actor; no retries
            send({"org_id": str(org.id), "unexpected": 1}, max_retries=0)
        labels = {"actor_name": "tick_org", "queue_name": queue}
        deadline = time.monotonic() + 60
        while True:
            # Every figure final: the middleware counts a message in before its error, reject
            # and duration (a read in between saw 5 processed and 1 rejected).
            families = parse(_get(url)[1])
            if (
                value(families, "dramatiq_messages_total", **labels) >= 5
                and value(families, "dramatiq_message_rejects_total", **labels) >= 2
                and value(families, "dramatiq_message_duration_milliseconds_count", **labels) >= 5
                and value(families, "dramatiq_messages_inprogress", **labels) == 0
            ):
                break
            assert time.monotonic() < deadline, f"messages not processed: {families}"
            time.sleep(0.3)
        total = value(families, "dramatiq_messages_total", **labels)
        errors = value(families, "dramatiq_message_errors_total", **labels)
        failed = value(families, "dramatiq_message_rejects_total", **labels)
        assert (total, total - errors, failed) == (5, 3, 2), "5 processed: 3 done, 2 failed"
        assert value(families, "dramatiq_message_duration_milliseconds_count", **labels) == 5
        assert value(families, "dramatiq_messages_inprogress", **labels) == 0
    finally:
        broker.flush_all()
        broker.close()
        _stop(proc, log)
    assert os.listdir(tmp_path / "prom"), "the worker processes wrote to PROMETHEUS_MULTIPROC_DIR"
