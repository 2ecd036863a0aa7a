"""Worker metrics: Dramatiq's own Prometheus middleware, set up for `certs worker`.

`dramatiq.middleware.prometheus.Prometheus` counts and times every message by queue and actor
(`dramatiq_messages_total`, `dramatiq_message_errors_total`, `dramatiq_message_retries_total`,
`dramatiq_message_rejects_total`, `dramatiq_messages_inprogress`,
`dramatiq_message_duration_milliseconds`, ...). It is configured by environment variables read
when its module is imported, and serves the figures itself:

- `dramatiq_prom_db`: its prometheus multiprocess directory. `certs worker` points it at the
  same directory as `PROMETHEUS_MULTIPROC_DIR` (emptied at start, `workers/process.py`).
- `dramatiq_prom_host` / `dramatiq_prom_port`: its exposition server. The dramatiq main process
  forks that server (the middleware's `forks`) once the worker processes are up; it merges the
  files of every worker process and answers on `WORKER_METRICS_PORT` (9191, the chart's worker
  metrics port), any path.

`prometheus_environment` maps the settings onto those variables; `certs worker` exports them
before dramatiq starts its processes, and each worker process adds the middleware in
`workers.entry.setup` (`add_message_metrics`). Only there: the middleware builds its metrics in
its `after_process_boot` hook, which only a dramatiq worker process emits, so in-process workers
(`certs run`, tests) go without. `WORKER_METRICS_PORT=0` turns it off.
"""

from __future__ import annotations

import dramatiq

from infra.settings import Settings

# All interfaces, like the API: the pod's port is what Prometheus scrapes.
EXPOSITION_HOST = "0.0.0.0"  # noqa: S104 - inside a container


def prometheus_environment(settings: Settings, directory: str) -> dict[str, str]:
    """What `dramatiq.middleware.prometheus` reads from the environment at import."""
    if not settings.worker_metrics_port:
        return {}
    return {
        "dramatiq_prom_db": directory,
        "dramatiq_prom_host": EXPOSITION_HOST,
        "dramatiq_prom_port": str(settings.worker_metrics_port),
    }


def add_message_metrics(broker: dramatiq.Broker, settings: Settings) -> None:
    """Add Dramatiq's Prometheus middleware to a worker process's broker (once)."""
    if not settings.worker_metrics_port:
        return
    # Imported here, in the worker process: the module reads its environment at import.
    from dramatiq.middleware.prometheus import Prometheus

    if not any(isinstance(m, Prometheus) for m in broker.middleware):
        broker.add_middleware(Prometheus())
