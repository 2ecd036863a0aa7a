"""JSON log lines: fixed keys, the request id and organization from the tenant context."""

from __future__ import annotations

import importlib
import io
import json
import logging
import uuid
from datetime import timedelta

from infra import context
from infra.access_log import JsonAccessLogger
from infra.logging import (
    ACCESS_ORG_KEY,
    AccessJsonFormatter,
    ContextFilter,
    JsonFormatter,
    gunicorn_logconfig,
)
from infra.settings import load_settings


def _line(formatter: logging.Formatter, emit) -> dict:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(ContextFilter())
    logger = logging.getLogger(f"certs.test.{uuid.uuid4().hex}")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    emit(logger)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1, "one JSON object per line"
    return json.loads(lines[0])


def test_a_record_carries_request_id_org_and_extras() -> None:
    org_id = uuid.uuid4()
    context.set_request_id("req-123")
    try:
        with context.tenant(org_id):
            record = _line(
                JsonFormatter(), lambda log: log.info("fan-out %s", "done", extra={"rows": 7})
            )
    finally:
        context.set_request_id(None)
    assert record["event"] == "fan-out done"
    assert record["level"] == "info"
    assert record["request_id"] == "req-123"
    assert record["org_id"] == str(org_id)
    assert record["rows"] == 7
    assert record["timestamp"].endswith("Z")
    assert "message" not in record


def test_exceptions_stay_on_one_line() -> None:
    def emit(log: logging.Logger) -> None:
        try:
            raise ValueError("multi\nline")
        except ValueError:
            log.exception("failed")

    record = _line(JsonFormatter(), emit)
    assert "ValueError" in record["exc_info"]
    assert record["org_id"] is None


def test_gunicorn_access_atoms_become_fields() -> None:
    atoms = {
        "m": "GET",
        "U": "/api/v1/org",
        "q": "",
        "s": "200",
        "B": 42,
        "D": 12500,
        "h": "10.0.0.1",
        "a": 'curl "quoted"'.replace('"', '\\"'),
        "{x-request-id}o": "abc",
        "{certs.org_id}e": "0b6a3a52-0000-4000-8000-000000000001",
    }
    record = _line(AccessJsonFormatter(), lambda log: log.info("%(m)s %(U)s", atoms))
    assert record["event"] == "request"
    assert record["status"] == 200
    assert record["duration_ms"] == 12.5
    assert record["request_id"] == "abc"
    assert record["org_id"] == "0b6a3a52-0000-4000-8000-000000000001"
    assert record["user_agent"] == 'curl "quoted"'


def test_format_choice() -> None:
    def log_format(env: dict[str, str]) -> str:
        base = {
            "JWT_SECRET_KEY": "k" * 40,
            "DATABASE_URL": "postgresql://x/y",
            "REDIS_URL": "r",
            "DB_PLATFORM_KEYS": "p" * 40,
            "WEBHOOK_SECRET_KEYS": "w" * 43 + "=",
        }
        return load_settings(base | env).log_format

    assert log_format({"CERTS_ENV": "production"}) == "json"
    assert log_format({}) == "text"
    assert log_format({"LOG_FORMAT": "json"}) == "json"
    assert log_format({"CERTS_ENV": "production", "LOG_FORMAT": "text"}) == "text"
    config = gunicorn_logconfig("INFO", "json")
    assert config["loggers"]["gunicorn.access"]["handlers"] == ["access"]
    for formatter in config["formatters"].values():  # the factories gunicorn will import
        module, _, name = formatter["()"].rpartition(".")
        assert callable(getattr(importlib.import_module(module), name))


class _Resp:
    status = "201 CREATED"
    sent = 321
    headers = [("Content-Type", "application/json"), ("X-Request-ID", "rid-7")]


def _access_line(logger_class: type, environ: dict) -> dict:
    """The access line a gunicorn logger of `logger_class` writes, with the production config."""
    from gunicorn.config import Config

    cfg = Config()
    cfg.set("accesslog", "-")
    cfg.set("logconfig_dict", gunicorn_logconfig("INFO", "json"))
    gunicorn_logger = logger_class(cfg)
    stream = io.StringIO()
    for handler in gunicorn_logger.access_log.handlers:
        handler.setStream(stream)
    headers = [("USER-AGENT", 'curl "quoted"'), ("AUTHORIZATION", "Bearer x")]
    gunicorn_logger.access(_Resp(), headers, environ, timedelta(microseconds=12_345))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1, "one JSON object per line"
    return json.loads(lines[0])


def test_the_lean_access_logger_writes_gunicorns_line() -> None:
    """`JsonAccessLogger` (gunicorn.conf.py's, for JSON logs) reads the ten values itself
    instead of gunicorn's atoms; the line must stay the object the formatter wrote."""
    from gunicorn.glogging import Logger

    environ = {
        "REQUEST_METHOD": "POST",
        "RAW_URI": "/api/v1/roles?x=1",
        "PATH_INFO": "/api/v1/roles",
        "QUERY_STRING": "x=1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.1.2.3",
        "HTTP_USER_AGENT": 'curl "quoted"',
        ACCESS_ORG_KEY: "0b6a3a52-0000-4000-8000-000000000001",
    }
    lean = _access_line(JsonAccessLogger, environ)
    stock = _access_line(Logger, environ)
    assert lean.pop("timestamp").endswith("Z")
    stock.pop("timestamp")
    assert list(lean) == list(stock)  # same keys, same order
    assert lean == stock
    assert lean["status"] == 201
    assert lean["duration_ms"] == 12.345
    assert lean["request_id"] == "rid-7"
    # Without an organization (a 401, say) and without a query string: nulls, as before.
    bare = {k: v for k, v in environ.items() if k not in (ACCESS_ORG_KEY, "QUERY_STRING")}
    lean, stock = _access_line(JsonAccessLogger, bare), _access_line(Logger, bare)
    lean.pop("timestamp"), stock.pop("timestamp")
    assert lean == stock
    assert (lean["org_id"], lean["query"]) == (None, None)
