"""One log line per message a worker processes (actor, outcome, duration, request id, org).

Counting and timing messages for Prometheus is Dramatiq's own middleware (`workers/metrics.py`);
this one only logs. It sits *before* `Retries` in the middleware list: after-hooks run in
reverse order, and it must see whether Retries gave up (`failed`) or will retry (`retried`). It
also switches a worker process to the JSON log format when the CLI asked dramatiq not to
configure logging.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy

_STARTED = "certs_log_started"

log = logging.getLogger("certs.worker.messages")


class MessageLog(dramatiq.Middleware):
    """Log every message an actor processes, with its outcome."""

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        # `certs worker` runs dramatiq with --skip-logging: configure the JSON lines here, in the
        # worker process, once its stderr points at the pipe the parent forwards.
        if not logging.getLogger().handlers:
            from infra.logging import configure_logging
            from runtime import current

            settings = current().settings
            configure_logging(settings.log_level, settings.log_format)

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        message.options[_STARTED] = time.perf_counter()

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        started = message.options.pop(_STARTED, None)
        if exception is None:
            outcome = "done"
        else:
            outcome = "failed" if message.failed else "retried"
        # From the message itself: TenantMiddleware's after-hook has already reset the context.
        log.info(
            "message %s %s",
            message.actor_name,
            outcome,
            extra={
                "actor": message.actor_name,
                "outcome": outcome,
                "message_id": message.message_id,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3)
                if started
                else None,
                "request_id": message.options.get("request_id"),
                "org_id": message.kwargs.get("org_id"),
            },
        )

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        message.options.pop(_STARTED, None)
