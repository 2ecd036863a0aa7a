"""Structured logs: one JSON object per line, stamped with the request id and the tenant.

Every record carries `timestamp` (UTC, ISO 8601), `level`, `logger`, `event` (the message),
`request_id` and `org_id` (from `infra.context`, so a job started by a request logs that
request's id: the outbox row stores it and the worker middleware restores it), plus any `extra`.
`LOG_FORMAT=text` keeps human-readable lines for development.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

from infra import context

# WSGI environ key where the API leaves the request's organization for the access log line.
ACCESS_ORG_KEY = "certs.org_id"
# Terminal colour codes some libraries put in their messages (werkzeug's dev server).
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s %(org_id)s] %(message)s"


def utc_millis(created: float) -> str:
    """A log line's `timestamp`: UTC, ISO 8601 to the millisecond, with a `Z`."""
    stamp = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


class ContextFilter(logging.Filter):
    """Copy the current request id and organization onto the record (for both formats)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = context.current_request_id()
        if not hasattr(record, "org_id"):
            org_id = context.current_org_id()
            record.org_id = str(org_id) if org_id else None
        return True


class JsonFormatter(_BaseJsonFormatter):
    """The project's JSON line: fixed keys first, then the record's `extra` fields."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("reserved_attrs", _RESERVED)
        super().__init__(*args, **kwargs)

    def add_fields(
        self, log_record: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_record["timestamp"] = utc_millis(record.created)
        log_record["level"] = record.levelname.lower()
        log_record["logger"] = record.name
        log_record["event"] = _ANSI.sub("", record.getMessage())
        rid = getattr(record, "request_id", None)
        org = getattr(record, "org_id", None)
        log_record["request_id"] = rid if rid is not None else context.current_request_id()
        if org is None:
            current = context.current_org_id()
            org = str(current) if current else None
        log_record["org_id"] = org
        super().add_fields(log_record, record, message_dict)
        log_record.pop("message", None)


class AccessLine(str):
    """An access line `infra.access_log.JsonAccessLogger` has already written as JSON."""


class AccessJsonFormatter(JsonFormatter):
    """gunicorn's access records: its atoms (a dict in `record.args`) become fields; a
    finished `AccessLine` (the project's gunicorn logger) goes out as it is."""

    def format(self, record: logging.LogRecord) -> str:
        if isinstance(record.msg, AccessLine):
            return str(record.msg)
        return super().format(record)

    def add_fields(
        self, log_record: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        atoms = record.args if isinstance(record.args, Mapping) else {}
        super().add_fields(log_record, record, message_dict)

        def atom(key: str) -> Any:
            value = dict.get(atoms, key)  # type: ignore[call-overload]
            return value.replace('\\"', '"') if isinstance(value, str) else value

        log_record["event"] = "request"
        log_record["request_id"] = atom("{x-request-id}o") or log_record["request_id"]
        org = atom("{" + ACCESS_ORG_KEY + "}e")
        log_record["org_id"] = org if org and org != "-" else log_record["org_id"]
        log_record.update(
            method=atom("m"),
            path=atom("U"),
            query=atom("q") or None,
            status=as_int(atom("s")),
            bytes=atom("B"),
            duration_ms=round((atom("D") or 0) / 1000, 3),
            remote_addr=atom("h"),
            user_agent=atom("a"),
            pid=record.process,  # which gunicorn worker answered
        )


def as_int(value: Any) -> Any:
    """`value` as an int when it reads as one (an HTTP status), else unchanged."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


# Standard LogRecord attributes (and our two context fields, which add_fields places itself):
# everything else on a record is an `extra` and goes into the JSON object.
_RESERVED = [
    *logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys(),
    "message",
    "asctime",
    "request_id",
    "org_id",
    "taskName",
]


def make_formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter()
    return logging.Formatter(TEXT_FORMAT)


def configure_logging(level: str, fmt: str) -> None:
    """Route every logger through one stderr handler in `fmt` (`json`|`text`); idempotent.

    The one logging set-up: `certs run`, the workers and the scheduler call it with their
    settings; gunicorn gets the same handler and formats through `gunicorn_logconfig`.
    """
    level = level.upper()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter(fmt))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def gunicorn_logconfig(level: str, fmt: str) -> dict[str, Any]:
    """`logconfig_dict` for gunicorn: error and access logs in the same format as the app."""
    level = level.upper()
    formatters: dict[str, Any] = (
        {
            "json": {"()": "infra.logging.JsonFormatter"},
            "access": {"()": "infra.logging.AccessJsonFormatter"},
        }
        if fmt == "json"
        else {
            "json": {"format": TEXT_FORMAT},
            "access": {"format": "%(asctime)s access %(message)s"},
        }
    )
    handler = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
        "filters": ["context"],
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "infra.logging.ContextFilter"}},
        "formatters": formatters,
        "handlers": {
            "default": {**handler, "formatter": "json"},
            # Access lines go to stdout, like gunicorn's own `--access-logfile -`.
            "access": {**handler, "formatter": "access", "stream": "ext://sys.stdout"},
        },
        "root": {"level": level, "handlers": ["default"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["default"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
        },
    }


def ensure_logging(level: str, fmt: str) -> None:
    """Configure logging unless a host already did (gunicorn's logconfig, the CLI, pytest)."""
    if not logging.getLogger().handlers:
        configure_logging(level, fmt)
