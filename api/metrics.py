"""Prometheus metrics for the API: request counts and latency, plus database gauges at scrape.

Under gunicorn (several processes) `PROMETHEUS_MULTIPROC_DIR` is set by `gunicorn.conf.py`, the
request metrics are written to per-process files and a scrape, served by whichever process gets
it, merges them. The database gauges (outbox backlog, jobs by state, notifications by status) are
facts about the shared database, not about a process, so they are computed at scrape time by a
custom collector, cached for `METRICS_DB_CACHE_SECONDS` (15 s) so a scrape storm stays cheap.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from infra import context
from infra import database as db
from infra.logging import ACCESS_ORG_KEY

log = logging.getLogger("certs.metrics")

REQUESTS = Counter(
    "certs_http_requests_total",
    "HTTP requests served, by endpoint (Flask endpoint name), method and status.",
    ["endpoint", "method", "status"],
)
LATENCY = Histogram(
    "certs_http_request_duration_seconds",
    "Time to serve an HTTP request, by endpoint and method.",
    ["endpoint", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

# Tenant tables whose per-state counts are exported: (table, state column, metric name, help).
TENANT_GAUGES = (
    ("jobs", "state", "certs_jobs", "Jobs by state (all organizations)."),
    ("notifications", "status", "certs_notifications", "Notifications by status."),
)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def init_metrics(app: Flask) -> None:
    """Count and time every request; the exposition itself is `api/resources/metrics.py`."""

    @app.before_request
    def _start_timer() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _observe(resp: Response) -> Response:
        started = g.pop("metrics_started", None)
        if started is not None:
            # The endpoint name, never the raw path: ids in paths would explode cardinality.
            endpoint = request.endpoint or "unmatched"
            REQUESTS.labels(endpoint, request.method, str(resp.status_code)).inc()
            LATENCY.labels(endpoint, request.method).observe(time.perf_counter() - started)
        # For gunicorn's access line, written after the tenant context is reset: it reads the
        # WSGI environ (`infra.logging.AccessJsonFormatter`).
        org_id = context.current_org_id()
        if org_id is not None:
            request.environ[ACCESS_ORG_KEY] = str(org_id)
        return resp


def render() -> tuple[bytes, str]:
    """The exposition: this process's (or all processes') metrics, then the database gauges."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    db_registry = CollectorRegistry()
    db_registry.register(DatabaseCollector())
    return body + generate_latest(db_registry), CONTENT_TYPE_LATEST


class DatabaseCollector(Collector):
    """Gauges read from the database at scrape time (cached briefly, per process)."""

    _lock = threading.Lock()
    _cached: tuple[float, list[GaugeMetricFamily]] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        ttl = float(os.environ.get("METRICS_DB_CACHE_SECONDS", "15"))
        with self._lock:
            cached = DatabaseCollector._cached
            if cached is None or time.monotonic() - cached[0] > ttl:
                cached = (time.monotonic(), _database_families())
                DatabaseCollector._cached = cached
        yield from cached[1]

    @classmethod
    def forget(cls) -> None:
        """Drop the cache (tests)."""
        cls._cached = None


def _database_families() -> list[GaugeMetricFamily]:
    up = GaugeMetricFamily(
        "certs_metrics_database_up", "1 if the database gauges could be read at this scrape."
    )
    families: list[GaugeMetricFamily] = []
    try:
        families += _outbox_families()
        families += _tenant_families()
        up.add_metric([], 1)
    except Exception:  # a scrape must answer even while the database is down
        log.warning("database metrics unavailable", exc_info=True)
        up.add_metric([], 0)
    return [up, *families]


def _outbox_families() -> list[GaugeMetricFamily]:
    from jobs.relay import backlog

    info = backlog()
    count = GaugeMetricFamily(
        "certs_outbox_backlog", "Outbox rows not yet processed (pending or sent, not done)."
    )
    count.add_metric([], info["count"])
    age = GaugeMetricFamily(
        "certs_outbox_oldest_age_seconds",
        "Age of the oldest outbox row not yet processed (0 when the backlog is empty).",
    )
    oldest = info["oldest"]
    age.add_metric([], max(0.0, (db.utcnow() - oldest).total_seconds()) if oldest else 0.0)
    return [count, age]


def _tenant_families() -> list[GaugeMetricFamily]:
    """Per-state counts over every organization.

    On PostgreSQL the app role is bound by row-level security, which admits one organization
    per transaction setting; the counts are therefore taken org by org, never by a role that
    bypasses RLS. A temporary PL/pgSQL function runs that loop inside the server (about 0.035 ms
    per org and table, docs/benchmarks.md); without the TEMP privilege the loop runs from here.
    """
    engine = db.get_engine()
    with engine.connect() as conn, conn.begin():
        existing = [spec for spec in TENANT_GAUGES if inspect(conn).has_table(spec[0])]
        totals: dict[str, dict[str, int]] = {spec[0]: {} for spec in existing}
        if engine.dialect.name != "postgresql":  # no RLS: one pass
            _add_counts(conn, existing, totals)
        else:
            try:
                with conn.begin_nested():
                    _add_counts_in_server(conn, existing, totals)
            except DBAPIError:
                log.info("no temporary functions allowed; counting org by org from here")
                totals = {spec[0]: {} for spec in existing}
                for org_id in conn.scalars(text("SELECT id FROM organizations")).all():
                    conn.execute(
                        text("SELECT set_config('app.org_id', :org, true)"), {"org": str(org_id)}
                    )
                    _add_counts(conn, existing, totals)
    families = []
    for table, _column, name, doc in existing:
        family = GaugeMetricFamily(name, doc, labels=["state"])
        for state, n in sorted(totals[table].items()):
            family.add_metric([state], n)
        families.append(family)
    return families


def _add_counts_in_server(
    conn: Any, specs: list[tuple[str, str, str, str]], totals: dict[str, dict[str, int]]
) -> None:
    for table, column, _name, _doc in specs:
        # Identifiers are the constants of TENANT_GAUGES, never input.
        fn = f"pg_temp.certs_metrics_{table}"
        conn.execute(
            text(
                f"""
                CREATE OR REPLACE FUNCTION {fn}() RETURNS TABLE (k text, n bigint)
                LANGUAGE plpgsql AS $fn$
                DECLARE o uuid;
                BEGIN
                  FOR o IN SELECT id FROM organizations LOOP
                    PERFORM set_config('app.org_id', o::text, true);
                    RETURN QUERY SELECT t.{column}::text, count(*) FROM {table} t GROUP BY 1;
                  END LOOP;
                  PERFORM set_config('app.org_id', '', true);
                END
                $fn$
                """
            )
        )
        for state, n in conn.execute(text(f"SELECT k, sum(n) FROM {fn}() GROUP BY k")):
            totals[table][str(state)] = int(n)


def _add_counts(
    conn: Any, specs: list[tuple[str, str, str, str]], totals: dict[str, dict[str, int]]
) -> None:
    for table, column, _name, _doc in specs:
        rows = conn.execute(text(f"SELECT {column}, count(*) FROM {table} GROUP BY {column}"))
        for state, n in rows:
            totals[table][str(state)] = totals[table].get(str(state), 0) + n
