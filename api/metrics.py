"""Prometheus metrics for the API: request counts and latency, plus database gauges at scrape.

Under gunicorn (several processes) `PROMETHEUS_MULTIPROC_DIR` is set by `gunicorn.conf.py`, the
request metrics are written to per-process files and a scrape, served by whichever process gets
it, merges them. The database gauges (outbox backlog, jobs by state, notifications by status) are
facts about the shared database, not about a process, so they are computed at scrape time by a
custom collector, cached for `METRICS_DB_CACHE_SECONDS` (15 s) so a scrape storm stays cheap.
The app role is bound by row-level security, so on PostgreSQL the cross-tenant totals come from
`certs_metrics_gauges()`, a SECURITY DEFINER function created by migration 0007 that returns
aggregates only; a scrape runs no DDL. SQLite has no RLS: plain aggregate queries there.
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
from sqlalchemy import func, select, text

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

# What the database gauges are: the function's (or the SQLite queries') `gauge` key, the metric
# name, its help, and its label (None: a single sample).
GAUGES = (
    (
        "outbox_backlog",
        "certs_outbox_backlog",
        "Outbox rows not yet processed (pending or sent, not done).",
        None,
    ),
    (
        "outbox_oldest_age_seconds",
        "certs_outbox_oldest_age_seconds",
        "Age of the oldest outbox row not yet processed (0 when the backlog is empty).",
        None,
    ),
    ("jobs", "certs_jobs", "Jobs by state (all organizations).", "state"),
    (
        "notifications",
        "certs_notifications",
        "Notifications by status (all organizations).",
        "state",
    ),
)
# Created by migrations/versions/20261130_0007_metrics_gauges_function.py.
GAUGES_FUNCTION = "certs_metrics_gauges"


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
    db_registry.register(DatabaseGauges(float(os.environ.get("METRICS_DB_CACHE_SECONDS", "15"))))
    return body + generate_latest(db_registry), CONTENT_TYPE_LATEST


class DatabaseGauges(Collector):
    """Gauges read from the database at scrape time, cached for `ttl` seconds per process."""

    _lock = threading.Lock()
    _cached: tuple[float, list[GaugeMetricFamily]] | None = None

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            cached = DatabaseGauges._cached
            if cached is None or time.monotonic() - cached[0] > self.ttl:
                cached = (time.monotonic(), database_families())
                DatabaseGauges._cached = cached
        yield from cached[1]

    @classmethod
    def forget(cls) -> None:
        """Drop the cache (tests)."""
        cls._cached = None


def database_families() -> list[GaugeMetricFamily]:
    up = GaugeMetricFamily(
        "certs_metrics_database_up", "1 if the database gauges could be read at this scrape."
    )
    try:
        rows = read_gauges()
    except Exception:  # a scrape must answer even while the database is down
        log.warning("database metrics unavailable", exc_info=True)
        up.add_metric([], 0)
        return [up]
    up.add_metric([], 1)
    families = [up]
    for key, name, doc, label in GAUGES:
        family = GaugeMetricFamily(name, doc, labels=[label] if label else None)
        samples = sorted((lbl, value) for gauge, lbl, value in rows if gauge == key)
        if label is None:
            family.add_metric([], samples[0][1] if samples else 0.0)
        else:
            for lbl, value in samples:
                family.add_metric([lbl], value)
        families.append(family)
    return families


def read_gauges() -> list[tuple[str, str, float]]:
    """(gauge, label, value) rows over every organization."""
    engine = db.get_engine()
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            result = conn.execute(text(f"SELECT gauge, label, value FROM {GAUGES_FUNCTION}()"))
            return [(gauge, label, float(value)) for gauge, label, value in result]
        return _plain_counts(conn)


def _plain_counts(conn: Any) -> list[tuple[str, str, float]]:
    """The same figures where no row-level security applies (SQLite): plain aggregates."""
    tables = db.Base.metadata.tables
    outbox, jobs, notifications = tables["outbox"], tables["jobs"], tables["notifications"]
    count, oldest = conn.execute(
        select(func.count(), func.min(outbox.c.created_at)).where(
            outbox.c.status.in_(("pending", "sent"))
        )
    ).one()
    age = max(0.0, (db.utcnow() - oldest).total_seconds()) if oldest else 0.0
    rows = [("outbox_backlog", "", float(count)), ("outbox_oldest_age_seconds", "", age)]
    for key, table, column in (
        ("jobs", jobs, jobs.c.state),
        ("notifications", notifications, notifications.c.status),
    ):
        for value, n in conn.execute(
            select(column, func.count()).select_from(table).group_by(column)
        ):
            rows.append((key, str(value), float(n)))
    return rows
