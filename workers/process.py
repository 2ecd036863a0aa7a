"""Process setup for `certs worker` and `certs scheduler`: JSON logs and the metrics environment.

Runs before anything imports `prometheus_client` or `dramatiq.middleware.prometheus`: both read
their directory (and Dramatiq's middleware its port) from the environment at import time, and
the dramatiq worker and exposition processes are forked from this one.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from infra.logging import configure_logging
from infra.settings import Settings

log = logging.getLogger("certs.process")


def prepare_multiprocess_dir(configured: str | None) -> str:
    """Use PROMETHEUS_MULTIPROC_DIR (or a fresh temporary one), emptied of a previous run's files.

    Kubernetes keeps an emptyDir across container restarts: stale files of dead processes would
    otherwise be merged into the new process's figures.
    """
    path = configured or tempfile.mkdtemp(prefix="certs-prom-")
    target = Path(path)
    target.mkdir(parents=True, exist_ok=True)
    for stale in target.glob("*.db"):
        stale.unlink(missing_ok=True)
    # prometheus_client (in this process and the forked ones) reads it from the environment.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(target)
    return str(target)


def prepare_worker(settings: Settings) -> list[str]:
    """Logs and the metrics environment; returns extra arguments for dramatiq.

    Dramatiq's Prometheus middleware (`workers/metrics.py`) writes to the same directory as
    PROMETHEUS_MULTIPROC_DIR and serves it on WORKER_METRICS_PORT from a process dramatiq forks.
    """
    configure_logging(settings.log_level, settings.log_format)
    directory = prepare_multiprocess_dir(settings.prometheus_multiproc_dir)
    from workers.metrics import prometheus_environment

    # For the dramatiq processes forked from this one; the library reads nothing else.
    os.environ.update(prometheus_environment(settings, directory))
    if settings.worker_metrics_port:
        log.info("worker metrics on :%d/metrics", settings.worker_metrics_port)
    # Our handler, not dramatiq's basicConfig, formats the worker processes' records.
    return ["--skip-logging"]


def prepare_scheduler(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format)
