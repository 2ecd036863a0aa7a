"""The one error shape (SPEC §7) for every failure, schema, service and auth errors alike:
`{"type", "title", "code", "status", "message", "errors"}` served as `application/problem+json`
(RFC 9457). Every error response goes through `error_response` (or `error_body` where the
bytes are written by hand, e.g. gunicorn's own refusals).
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

from flask import Flask, Response, g
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from werkzeug.exceptions import HTTPException

from api.unit_of_work import ATTEMPTS_KEY
from infra import db_errors
from infra.errors import DomainError

log = logging.getLogger("certs.api")

PROBLEM_JSON = "application/problem+json"
# RFC 9457 §4.2.1: `about:blank` means "nothing more than the HTTP status"; a machine-readable
# reason (`code_name`) gets a type of its own under this URN prefix.
PROBLEM_TYPE_PREFIX = "urn:certs:problem:"
# RFC 6750 §3: a 401 names the scheme it wants.
WWW_AUTHENTICATE = 'Bearer realm="certs"'


def error_response(
    status: int,
    message: str,
    errors: dict[str, Any] | None = None,
    code_name: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """The one error response: `error_body` as `application/problem+json`, with `headers`.

    Every refusal of the API (schema, service, auth, limits, preconditions) is built here.
    A 401 always carries `WWW-Authenticate: Bearer`.
    """
    body = error_body(status, message, errors, code_name)
    resp = Response(json.dumps(body, default=str), status=status)
    resp.mimetype = PROBLEM_JSON
    if status == 401:
        resp.headers["WWW-Authenticate"] = WWW_AUTHENTICATE
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def error_body(
    status: int,
    message: str,
    errors: dict[str, Any] | None = None,
    code_name: str | None = None,
) -> dict[str, Any]:
    """RFC 9457's `type` and `title`, then SPEC §7's `code`, `status`, `message`, `errors`.

    `errors` maps where the problem is (`json`, `query`, `form`, `files`, `headers` for what
    the schemas refuse, a field name for what a service refuses) to messages, nested like the
    body. `status` stays the reason phrase (SPEC §7), `code` the HTTP status or, with
    `code_name`, a stable reason (then `http_status` carries the number).
    """
    phrase = HTTPStatus(status).phrase
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": phrase,
        "code": status,
        "status": phrase,
        "message": message,
        "errors": errors or {},
    }
    if code_name:
        # A stable machine-readable reason next to the HTTP code, e.g. "module_disabled".
        body["type"] = PROBLEM_TYPE_PREFIX + code_name
        body["title"] = code_name.replace("_", " ").capitalize()
        body["code"] = code_name
        body["http_status"] = status
    return body


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


# Unique indexes whose violation (a request racing past the service's own check) names a field.
# PostgreSQL and SQLite both quote an index's name in the message of a violation.
_UNIQUE_FIELDS = {
    "uq_roles_org_lower_name": "name",
    "uq_certification_groups_sibling_name": "name",
    "uq_certification_groups_root_name": "name",
    "uq_certifications_org_lower_name": "name",
}


def _integrity(exc: IntegrityError) -> Response:
    log.info("integrity error: %s", exc.orig)
    text = str(exc.orig)
    for index, field in _UNIQUE_FIELDS.items():
        if index in text:
            return error_response(
                409,
                f"Another row already has this {field} (names ignore case).",
                {field: ["Already used (names ignore case)."]},
            )
    return error_response(409, "The change conflicts with existing data.")


# Seconds a client should wait before sending the request again.
CONFLICT_RETRY_AFTER = "1"
TIMEOUT_RETRY_AFTER = "5"


def _database(exc: DBAPIError) -> Response:
    """Tell apart what psycopg raises alike as `OperationalError` (`infra.db_errors`)."""
    if db_errors.is_retryable(exc):
        # `api.unit_of_work` already ran the request again; it kept colliding.
        attempts = g.get(ATTEMPTS_KEY, 1)
        log.warning("transaction conflict after %d attempt(s): %s", attempts, exc.orig)
        return error_response(
            409,
            f"The change kept colliding with concurrent changes to the same data ({attempts} "
            "attempts); nothing was written. Send it again.",
            code_name="conflict_retry",
            headers={"Retry-After": CONFLICT_RETRY_AFTER},
        )
    if db_errors.is_statement_timeout(exc):
        log.warning("statement timeout: %s", exc.orig)
        return error_response(
            503,
            "The request took too long in the database and was cancelled; nothing was "
            "written. Retry later, or narrow the request.",
            code_name="statement_timeout",
            headers={"Retry-After": TIMEOUT_RETRY_AFTER},
        )
    if db_errors.is_disconnect(exc):
        log.warning("database unavailable: %s", exc.orig)
        return error_response(503, "The database is unavailable; retry shortly.")
    if isinstance(exc, OperationalError):  # the server is there but could not do it now
        log.warning("database error: %s", exc.orig)
        return error_response(503, "The database could not complete the request; retry shortly.")
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
