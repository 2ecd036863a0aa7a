"""Prometheus metrics of the API: request metrics by prometheus-flask-exporter, database gauges.

**Requests.** `prometheus_flask_exporter` times and counts every request: a histogram by Flask
endpoint name (never the raw path: ids would explode cardinality), method and status, a
counter by method and status, and one of requests that raised. Under gunicorn,
`gunicorn.conf.py` has set `PROMETHEUS_MULTIPROC_DIR` before any worker imports
prometheus_client, so each worker writes its figures to files there and the scrape, served by
whichever worker gets it, merges them (`GunicornInternalPrometheusMetrics`); the master retires
a dead worker's files in `child_exit`. Elsewhere (`certs run`, tests) each app has a registry of
its own.

**Database gauges** (outbox backlog and rows by status, jobs by state, notifications by
status) are facts about the shared database, not about a process: computed at scrape time and
cached per process for `METRICS_DB_CACHE_SECONDS`. The app role is bound by row-level
security, so on PostgreSQL the cross-tenant totals come from `certs_metrics_gauges()`, a
SECURITY DEFINER function created by migration 0008 (extended by 0011) that returns aggregates
only; a scrape runs no DDL. SQLite has no RLS: plain aggregate queries there.

`/metrics` itself is `api/resources/metrics.py`: the request metrics, then the gauges.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flask import Flask, Request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from prometheus_flask_exporter import PrometheusMetrics
from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics
from sqlalchemy import func, select, text

from infra import database as db
from infra.settings import Settings

log = logging.getLogger("certs.metrics")

EXTENSION = "certs_metrics"
# Names: certs_http_request_duration_seconds, certs_http_request_total,
# certs_http_request_exceptions_total, certs_exporter_info.
PREFIX = "certs"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

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
    (
        "outbox_rows",
        "certs_outbox_rows",
        "Outbox rows by status, done excepted: failed ones wait for their retry, dead ones "
        "were given up (docs/operations.md).",
        "status",
    ),
    ("jobs", "certs_jobs", "Jobs by state (all organizations).", "state"),
    (
        "notifications",
        "certs_notifications",
        "Notifications by status (all organizations).",
        "state",
    ),
)
# `certs_outbox_rows` always has these (done rows left out: they only grow).
OUTBOX_STATUSES = ("pending", "sent", "failed", "dead")
# Created by migrations/versions/20261130_0008_metrics_gauges_function.py (0011: outbox_rows).
GAUGES_FUNCTION = "certs_metrics_gauges"


def endpoint(req: Request) -> str:
    """The `endpoint` label (the exporter names the label after this function)."""
    return req.endpoint or "unmatched"


@dataclass(frozen=True)
class Metrics:
    exporter: PrometheusMetrics
    database: DatabaseGauges


def init_metrics(app: Flask, settings: Settings) -> Metrics:
    """Instrument every request of `app`; the exposition is `render(app)`."""
    options: dict[str, Any] = {
        "path": None,  # our /metrics adds the database gauges (api/resources/metrics.py)
        "defaults_prefix": PREFIX,
        "group_by": endpoint,
        "buckets": LATENCY_BUCKETS,
    }
    exporter: PrometheusMetrics
    if settings.prometheus_multiproc_dir:  # gunicorn (gunicorn.conf.py prepared the directory)
        exporter = GunicornInternalPrometheusMetrics.for_app_factory(**options)
    else:
        exporter = PrometheusMetrics.for_app_factory(registry=CollectorRegistry(), **options)
    exporter.init_app(app)
    metrics = Metrics(exporter, DatabaseGauges(settings.metrics_db_cache_seconds))
    app.extensions[EXTENSION] = metrics
    return metrics


def render(app: Flask) -> tuple[bytes, str]:
    """The exposition: request metrics (all gunicorn workers'), then the database gauges."""
    metrics: Metrics = app.extensions[EXTENSION]
    # Text format, so that the two parts concatenate into one valid exposition.
    requests, _content_type = metrics.exporter.generate_metrics()
    gauges = CollectorRegistry()
    gauges.register(metrics.database)
    return requests.encode() + generate_latest(gauges), CONTENT_TYPE_LATEST


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
    by_status = dict(
        conn.execute(
            select(outbox.c.status, func.count())
            .where(outbox.c.status != "done")
            .group_by(outbox.c.status)
        ).all()
    )
    for status in OUTBOX_STATUSES:
        rows.append(("outbox_rows", status, float(by_status.get(status, 0))))
    for key, table, column in (
        ("jobs", jobs, jobs.c.state),
        ("notifications", notifications, notifications.c.status),
    ):
        for value, n in conn.execute(
            select(column, func.count()).select_from(table).group_by(column)
        ):
            rows.append((key, str(value), float(n)))
    return rows
