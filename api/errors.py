"""The one error shape (SPEC §7): {"code", "status", "message", "errors"} for every failure."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from flask import Flask, Response, jsonify
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from werkzeug.exceptions import HTTPException

from infra.errors import DomainError

log = logging.getLogger("certs.api")


def error_response(
    status: int,
    message: str,
    errors: dict[str, Any] | None = None,
    code_name: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "code": status,
        "status": HTTPStatus(status).phrase,
        "message": message,
        "errors": errors or {},
    }
    if code_name:
        # A stable machine-readable reason next to the HTTP code, e.g. "module_disabled".
        body["code"] = code_name
        body["http_status"] = status
    resp = jsonify(body)
    resp.status_code = status
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def _http(exc: HTTPException) -> Response:
    status = exc.code or 500
    data = getattr(exc, "data", None) or {}
    errors = data.get("messages") or data.get("errors") or {}
    message = data.get("message") or exc.description or HTTPStatus(status).phrase
    if status == 422 and errors:
        message = "Invalid request: " + ", ".join(_field_paths(errors))
    headers = {}
    valid_methods = getattr(exc, "valid_methods", None)  # werkzeug's MethodNotAllowed
    if status == 405 and valid_methods:
        headers["Allow"] = ", ".join(valid_methods)
    return error_response(status, message, errors, headers=headers)


def _field_paths(errors: Any, prefix: str = "") -> list[str]:
    if not isinstance(errors, dict):
        return [prefix] if prefix else []
    paths: list[str] = []
    for key, value in errors.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            paths.extend(_field_paths(value, path))
        else:
            paths.append(path)
    return paths


def _domain(exc: DomainError) -> Response:
    return error_response(exc.http_status, exc.message, exc.errors, exc.code_name)


def _integrity(exc: IntegrityError) -> Response:
    log.info("integrity error: %s", exc.orig)
    return error_response(409, "The change conflicts with existing data.")


def _database(exc: DBAPIError) -> Response:
    if isinstance(exc, OperationalError) or exc.connection_invalidated:
        log.warning("database unavailable: %s", exc.orig)
        return error_response(503, "The database is unavailable; retry shortly.")
    log.exception("database error")
    return error_response(500, "Internal error.")


def _unexpected(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return _http(exc)
    log.exception("unhandled error")
    return error_response(500, "Internal error.")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(HTTPException, _http)
    app.register_error_handler(DomainError, _domain)
    app.register_error_handler(IntegrityError, _integrity)
    app.register_error_handler(DBAPIError, _database)
    app.register_error_handler(Exception, _unexpected)
