"""Worker metrics: messages by actor and outcome, durations, in-flight, via prometheus-client.

Dramatiq ships `dramatiq.middleware.prometheus.Prometheus`, but it forks its own HTTP server and
keeps its own multiprocess database; ours writes to the same `PROMETHEUS_MULTIPROC_DIR` mechanism
as gunicorn, and `certs worker` serves the merged figures of all its worker processes on
`WORKER_METRICS_PORT` (9191) with `serve_metrics()`. The middleware also switches a worker
process to the JSON log format when the CLI asked dramatiq not to configure logging.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import dramatiq
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

MESSAGES = Counter(
    "certs_worker_messages_total",
    "Messages processed, by actor and outcome (done, failed, retried, skipped).",
    ["actor", "outcome"],
)
DURATION = Histogram(
    "certs_worker_message_duration_seconds",
    "Time an actor took to process a message.",
    ["actor"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0),
)
IN_PROGRESS = Gauge(
    "certs_worker_messages_in_progress",
    "Messages being processed right now, by actor.",
    ["actor"],
    multiprocess_mode="livesum",
)

_STARTED = "certs_metrics_started"

log = logging.getLogger("certs.worker.messages")


class WorkerMetrics(dramatiq.Middleware):
    """Count and time every message an actor processes."""

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        # `certs worker` runs dramatiq with --skip-logging: configure the JSON lines here, in the
        # worker process, once its stderr points at the pipe the parent forwards.
        if not logging.getLogger().handlers:
            from infra.logging import configure_logging
            from runtime import current

            settings = current().settings
            configure_logging(settings.log_level, settings.log_format)

    def before_process_message(
        self, broker: dramatiq.Broker, message: dramatiq.MessageProxy
    ) -> None:
        message.options[_STARTED] = time.perf_counter()
        IN_PROGRESS.labels(message.actor_name).inc()

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        started = message.options.pop(_STARTED, None)
        actor = message.actor_name
        IN_PROGRESS.labels(actor).dec()
        if started is not None:
            DURATION.labels(actor).observe(time.perf_counter() - started)
        if exception is None:
            outcome = "done"
        else:
            outcome = "failed" if message.failed else "retried"
        MESSAGES.labels(actor, outcome).inc()
        # From the message itself: TenantMiddleware's after-hook has already reset the context.
        log.info(
            "message %s %s",
            actor,
            outcome,
            extra={
                "actor": actor,
                "outcome": outcome,
                "message_id": message.message_id,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3)
                if started
                else None,
                "request_id": message.options.get("request_id"),
                "org_id": message.kwargs.get("org_id"),
            },
        )

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        if message.options.pop(_STARTED, None) is not None:
            IN_PROGRESS.labels(message.actor_name).dec()
        MESSAGES.labels(message.actor_name, "skipped").inc()


def serve_metrics(port: int) -> None:
    """Serve every worker process's metrics on `port` (a daemon thread of the calling process)."""
    from prometheus_client import start_http_server

    registry: CollectorRegistry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    start_http_server(port, registry=registry)
