"""gunicorn's access line as the project's JSON object, built from the ten values it carries.

gunicorn's own `Logger.access` builds ~40 "atoms" for its format string (every request and
response header, every environ key, a strftime date) and sends them through the logging
machinery, where `infra.logging.AccessJsonFormatter` kept ten of them: ~140 µs per request,
about a tenth of a `GET /org`'s CPU. `JsonAccessLogger` reads the ten values itself and hands
the access handlers a finished line (an `AccessLine`, which `AccessJsonFormatter` passes
through), so the handlers, levels and streams of `gunicorn_logconfig` still apply. The line
is the same object, key for key (`tests/deploy/test_logging.py` compares the two). Used when
LOG_FORMAT=json; text logs keep gunicorn's own access logger.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from gunicorn.glogging import Logger

from infra import context
from infra.logging import ACCESS_ORG_KEY, AccessLine, as_int, utc_millis


def access_fields(
    resp: Any, environ: dict[str, Any], request_time: timedelta, created: float
) -> dict[str, Any]:
    """The access line's object, in the order `AccessJsonFormatter` writes it."""
    status = resp.status
    if isinstance(status, str):
        status = status.split(None, 1)[0]
    request_id = None
    for name, value in resp.headers:
        if name.lower() == "x-request-id":
            request_id = value
            break
    org_id = environ.get(ACCESS_ORG_KEY)
    if not org_id:
        current = context.current_org_id()
        org_id = str(current) if current else None
    return {
        "timestamp": utc_millis(created),
        "level": "info",
        "logger": "gunicorn.access",
        "event": "request",
        "request_id": request_id or context.current_request_id(),
        "org_id": org_id,
        "method": environ.get("REQUEST_METHOD"),
        "path": environ.get("PATH_INFO"),
        "query": environ.get("QUERY_STRING") or None,
        "status": as_int(status),
        "bytes": getattr(resp, "sent", None),
        "duration_ms": round(request_time / timedelta(milliseconds=1), 3),
        "remote_addr": environ.get("REMOTE_ADDR", "-"),
        "user_agent": environ.get("HTTP_USER_AGENT", "-"),
        "pid": os.getpid(),
    }


class JsonAccessLogger(Logger):
    """gunicorn's logger with the access line built directly (see the module doc)."""

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        log: logging.Logger = self.access_log
        if not log.isEnabledFor(logging.INFO):
            return
        try:
            fields = access_fields(resp, environ, request_time, datetime.now(UTC).timestamp())
            log.info(AccessLine(orjson.dumps(fields).decode()))
        except Exception:  # noqa: BLE001 - as gunicorn's own: a bad line never fails a request
            self.error("access log line failed", exc_info=True)
