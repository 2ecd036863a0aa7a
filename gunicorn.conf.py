"""gunicorn settings for the API: `gunicorn -c gunicorn.conf.py wsgi:app`.

Every value can be overridden from the environment (names below) or the command line.
Prometheus multiprocess mode (prometheus-flask-exporter's `GunicornInternalPrometheusMetrics`,
`api/metrics.py`): each worker writes its metrics to PROMETHEUS_MULTIPROC_DIR, a scrape of
/metrics merges them, and `child_exit` retires a dead worker's live gauges.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import sys
from pathlib import Path

# The repo root, so `infra.logging` imports when gunicorn runs from elsewhere.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from infra.logging import gunicorn_logconfig  # noqa: E402
from infra.settings import load_settings  # noqa: E402
from workers.process import prepare_multiprocess_dir  # noqa: E402

_settings = load_settings()
# The directory must exist before the workers import prometheus_client (it picks its value
# store at import); the master empties it so a restarted container starts from clean files.
prepare_multiprocess_dir(_settings.prometheus_multiproc_dir)


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _cpu_count() -> int:
    """CPUs this process may use: its affinity, capped by a cgroup v2 CPU quota (a container's
    CPU limit is a quota, not fewer visible CPUs)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = multiprocessing.cpu_count()
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cpus


bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")  # noqa: S104 - inside a container
# Threaded workers (gthread): the API is database-bound; 2 × CPUs + 1 processes keep the CPUs
# busy while some wait on PostgreSQL. In Kubernetes set GUNICORN_WORKERS from the CPU limit.
workers = _int("GUNICORN_WORKERS", 2 * _cpu_count() + 1)
# Not sync workers: a sync worker only tells the master it is alive between requests, so the
# master killed it at `timeout` in the middle of a long streamed response (a CSV export of a
# large view arrived as HTTP 200 with a truncated body). A gthread worker's main loop beats
# the heartbeat while its threads serve, so a request may stream for as long as it needs.
worker_class = "gthread"
# Two threads: a worker streaming an export still answers the next request it accepted.
threads = _int("GUNICORN_THREADS", 2)
# A worker process silent this long (hung, not merely busy) is killed and replaced. It no
# longer bounds a request: PostgreSQL's statement timeout (DB_STATEMENT_TIMEOUT_MS, 30 s)
# bounds each query, and an export is paged queries.
timeout = _int("GUNICORN_TIMEOUT", 60)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
# Recycle workers now and then so slow leaks never accumulate; jitter avoids all at once.
max_requests = _int("GUNICORN_MAX_REQUESTS", 10_000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 1_000)
# Heartbeat files in memory (tmpfs), not on the read-only root filesystem.
_SHM = "/dev/shm"  # noqa: S108 - a tmpfs gunicorn only writes its heartbeat files to
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR") or (
    _SHM if os.path.isdir(_SHM) else None
)
# gunicorn 27 opens a control socket in $HOME by default: useless in a container, and $HOME
# is read-only there (STACK-NOTES 2). Equivalent of --no-control-socket.
control_socket_disable = True
# Request line and headers, refused by gunicorn before the app (414/431; gunicorn's defaults,
# stated here): a JWT or a cookie fits well within one 8 KB header.
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190
# Behind an ingress/load balancer: trust its X-Forwarded-* headers.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "*")

# Logs: one JSON object per line (LOG_FORMAT=text for humans); access lines on stdout.
accesslog = "-"
errorlog = "-"
loglevel = _settings.log_level.lower()
logconfig_dict = gunicorn_logconfig(_settings.log_level, _settings.log_format)
# JSON access lines built from the values they carry, not from gunicorn's ~40 atoms per request
# (a tenth of a small request's CPU; see infra/access_log.py).
if _settings.log_format == "json":
    logger_class = "infra.access_log.JsonAccessLogger"


def child_exit(server, worker) -> None:  # type: ignore[no-untyped-def]
    """A worker died or was recycled: drop its live gauges from the merged metrics."""
    from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

    GunicornInternalPrometheusMetrics.mark_process_dead_on_child_exit(worker.pid)


def post_worker_init(worker) -> None:  # type: ignore[no-untyped-def]
    """The errors gunicorn answers itself (a malformed request, a request line or headers over
    the limits above) in the API's JSON error shape, not gunicorn's HTML page."""
    from gunicorn import util

    from api.limits import server_error_writer

    cfg = worker.cfg
    util.write_error = server_error_writer(
        util.write_nonblock,
        cfg.limit_request_line,
        cfg.limit_request_fields,
        cfg.limit_request_field_size,
    )
