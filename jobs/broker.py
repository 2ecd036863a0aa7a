"""The one place that builds the Dramatiq broker from settings (called by `runtime.bootstrap`).

`REDIS_URL` set: Redis broker (production, CI). Unset: an in-process broker whose messages a
worker thread in the same process consumes (the embedded default). Workers add their own
middleware (tenant context, metrics, outbox bookkeeping) when they register actors.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AgeLimit, Callbacks, Pipelines, Retries, ShutdownNotifications
from dramatiq.middleware import TimeLimit as _TimeLimit

from infra.settings import Settings

TIME_LIMIT_MS = 15 * 60 * 1000
# Short socket timeouts: publishing must never hold a request for seconds on a hung Redis.
REDIS_SOCKET_TIMEOUT_S = 2.0


def _middleware() -> list[dramatiq.Middleware]:
    return [
        AgeLimit(),
        _TimeLimit(time_limit=TIME_LIMIT_MS),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        Retries(max_retries=5, min_backoff=500, max_backoff=60_000),
    ]


def build_broker(settings: Settings) -> dramatiq.Broker:
    if settings.redis_url:
        return RedisBroker(
            url=settings.redis_url,
            namespace=settings.redis_namespace,
            middleware=_middleware(),
            heartbeat_timeout=30_000,
            socket_timeout=REDIS_SOCKET_TIMEOUT_S,
            socket_connect_timeout=REDIS_SOCKET_TIMEOUT_S,
        )
    return StubBroker(middleware=_middleware())
