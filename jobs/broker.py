"""The one place that builds the Dramatiq broker from settings (called by `runtime.bootstrap`).

`REDIS_URL` set: Redis broker (production, CI). Unset: an in-process broker whose messages a
worker thread in the same process consumes (the embedded default). Workers add their own
middleware (tenant context, metrics, outbox bookkeeping) when they register actors.
"""

from __future__ import annotations

import uuid

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AgeLimit, Callbacks, Pipelines, Retries, ShutdownNotifications
from dramatiq.middleware import TimeLimit as _TimeLimit

from infra.settings import Settings

TIME_LIMIT_MS = 15 * 60 * 1000
# Short socket timeouts: publishing must never hold a request for seconds on a hung Redis.
REDIS_SOCKET_TIMEOUT_S = 2.0
# Dramatiq's Redis broker gives a dead worker's unacked messages back to the queue during
# "maintenance", which runs on `maintenance_chance` per million broker commands (default 1,000:
# an idle worker polls about once a second per queue, so the dead worker's message waited
# 5-15 minutes). 100,000 (10 %): maintenance on each queue every few seconds, and it is cheap
# (two sorted-set range reads). A worker is dead after `heartbeat_timeout` without a command;
# its consumer threads poll every second even while every worker thread is busy.
REDIS_MAINTENANCE_CHANCE = 100_000
REDIS_HEARTBEAT_TIMEOUT_MS = 30_000
# A key whose value names this Redis's current life: set once (NX) by whoever needs it first;
# gone with everything else when Redis loses its data (crash without persistence, flush).
EPOCH_KEY = "__outbox_epoch__"


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
            heartbeat_timeout=REDIS_HEARTBEAT_TIMEOUT_MS,
            maintenance_chance=REDIS_MAINTENANCE_CHANCE,
            socket_timeout=REDIS_SOCKET_TIMEOUT_S,
            socket_connect_timeout=REDIS_SOCKET_TIMEOUT_S,
        )
    return StubBroker(middleware=_middleware())


def broker_epoch(broker: dramatiq.Broker) -> str | None:
    """The broker's current life, or None where messages cannot be lost on their own.

    An outbox row records the epoch it was published into; a `sent` row of another epoch was
    published into a Redis that has since lost its data: the sweep sends it again at once
    instead of after `RESEND_AFTER`. The in-process broker has no epoch: it lives and dies
    with the process that consumes it.
    """
    if not isinstance(broker, RedisBroker):
        return None
    key = f"{broker.namespace}:{EPOCH_KEY}"
    broker.client.set(key, uuid.uuid4().hex, nx=True)
    value = broker.client.get(key)
    return value.decode() if isinstance(value, bytes) else value
