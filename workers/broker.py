"""The one place that chooses the Dramatiq broker; imported before any actor is defined.

`REDIS_URL` set: Redis broker (production, CI). Unset: an in-process broker whose messages a
worker thread in the same process consumes (the embedded default).
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AgeLimit, Callbacks, Pipelines, Retries, ShutdownNotifications
from dramatiq.middleware import TimeLimit as _TimeLimit

from infra import database as db
from infra.settings import load_settings
from workers.metrics import WorkerMetrics
from workers.middleware import TenantMiddleware

# Lower than Dramatiq's defaults (20 retries, backoff up to days; 10 min): a job that keeps
# failing should surface in its Job row within minutes, and the outbox sweep re-sends later.
MAX_RETRIES = 5
TIME_LIMIT_MS = 15 * 60 * 1000

settings = load_settings()
db.configure(settings)


def _middleware() -> list[dramatiq.Middleware]:
    return [
        AgeLimit(),
        _TimeLimit(time_limit=TIME_LIMIT_MS),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        # Both before Retries: after-hooks run in reverse order, and both must see whether
        # Retries gave up (`message.failed`) to count it / mark its outbox row failed.
        WorkerMetrics(),
        TenantMiddleware(),
        Retries(max_retries=MAX_RETRIES, min_backoff=500, max_backoff=60_000),
    ]


def _make_broker() -> dramatiq.Broker:
    if settings.redis_url:
        return RedisBroker(
            url=settings.redis_url,
            namespace=settings.redis_namespace,
            middleware=_middleware(),
            heartbeat_timeout=30_000,
        )
    return StubBroker(middleware=_middleware())


broker = _make_broker()
dramatiq.set_broker(broker)

import jobs.relay  # noqa: E402,F401 - registers the after-commit relay on every session
