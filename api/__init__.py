"""The HTTP API: app factory, blueprints (one module per resource family in `api.resources`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import cached_property
from types import FunctionType
from typing import Any

from flask import Flask, Response, current_app, g, json, request
from flask_smorest import Api
from flask_smorest import Blueprint as SmorestBlueprint

from api.body import ArgumentsParser, BodyRequest
from api.db import init_request_sessions
from api.docs import docs_assets_blueprint, docs_config
from api.errors import register_error_handlers
from api.limits import init_limits
from api.openapi import ErrorSchema, complete_document
from api.rate_limits import init_rate_limits
from api.semantics import run_view
from api.semantics_doc import document_http_semantics
from api.unit_of_work import run_and_commit
from infra import context
from infra.logging import ACCESS_ORG_KEY
from infra.settings import Settings
from runtime import Runtime, bootstrap
from tenancy.auth import init_auth

API_PREFIX = "/api/v1"

# Every blueprint's schemas read JSON through `api.body` and refuse unknown query parameters.
SmorestBlueprint.ARGUMENTS_PARSER = ArgumentsParser()


class CertsApi(Api):
    """flask-smorest's Api serving the document completed by `api.openapi` (built once)."""

    ERROR_SCHEMA = ErrorSchema
    DEFAULT_ERROR_RESPONSE_NAME = None  # `api.openapi` documents every error response

    _document: dict[str, Any] | None = None

    def document(self) -> dict[str, Any]:
        """The served OpenAPI document: the views' documentation plus `api.openapi`'s rules."""
        if self._document is None:
            self._document = complete_document(self.spec.to_dict())
        return self._document

    def _openapi_json(self) -> Response:
        return current_app.response_class(
            json.dumps(self.document(), indent=2, sort_keys=False), mimetype="application/json"
        )


_SYNC_CHECKS_KEPT = 10_000


class CertsFlask(Flask):
    request_class = BodyRequest  # JSON bodies parsed by `api.body.loads`

    def dispatch_request(self) -> Any:
        """Run the view, then commit: the one commit owner of a request.

        A failing commit (e.g. a unique violation) becomes that request's error response, and
        jobs written to the outbox are relayed only after the commit succeeded. A deadlock or
        serialization failure runs view and commit again in a fresh transaction
        (`api.unit_of_work`). The view runs under the API's HTTP semantics (idempotency keys,
        preconditions, Location, ETag: `api.semantics`).
        """
        return run_and_commit(lambda: run_view(super(CertsFlask, self).dispatch_request))

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Flask's check, once per function: it asks `inspect.iscoroutinefunction` of each
        request hook and view on every request (fifteen times for a GET). Functions are
        kept; bound methods (a view instance's, new per request) are checked as before."""
        if type(func) is not FunctionType:
            return super().ensure_sync(func)
        kept = self._checked_sync
        checked = kept.get(func)
        if checked is None:
            if len(kept) >= _SYNC_CHECKS_KEPT:  # (a function made per request, say)
                kept.clear()
            checked = kept[func] = super().ensure_sync(func)
        return checked

    @cached_property
    def _checked_sync(self) -> dict[Callable[..., Any], Callable[..., Any]]:
        return {}


def create_app(settings: Settings, runtime: Runtime | None = None) -> Flask:
    """The API for `settings`, wired by `runtime.bootstrap` (or the runtime given)."""
    runtime = runtime or bootstrap(settings)
    app = CertsFlask(__name__)
    app.config.update(
        CERTS_SETTINGS=settings,
        API_TITLE="Certifications API",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX=API_PREFIX,
        OPENAPI_JSON_PATH="openapi.json",
        **docs_config(API_PREFIX),  # Swagger UI and ReDoc from local assets (`api.docs`)
        API_SPEC_OPTIONS={
            "info": {
                "description": (
                    "Multi-tenant certifications backend. Authenticate with a JWT bearer token "
                    "carrying `sub`, `org` and `scopes`."
                )
            },
        },
        JSON_SORT_KEYS=False,
    )
    init_auth(app, settings)
    init_request_sessions(app, runtime.sessions)
    api = CertsApi(app)
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    _register_blueprints(api)
    document_http_semantics(app, api.spec, API_PREFIX)
    app.register_blueprint(docs_assets_blueprint(API_PREFIX))
    register_error_handlers(app)
    _request_ids(app)
    init_limits(app, settings)  # after the request id, so a refusal carries one
    init_rate_limits(app, settings)
    from api.metrics import init_metrics  # here: the CLI must not import prometheus_client
    from infra.logging import ensure_logging

    init_metrics(app, settings)
    ensure_logging(settings.log_level, settings.log_format)
    return app


def _register_blueprints(api: Api) -> None:
    import api.resources as resources
    from api.schemas.directory import BULK_ROW_SCHEMAS

    for name, schema in BULK_ROW_SCHEMAS.items():  # referenced by the bulk bodies' docs
        api.spec.components.schema(name, schema=schema)

    for blp in resources.API_BLUEPRINTS:
        api.register_blueprint(blp, url_prefix=API_PREFIX + (blp.url_prefix or ""))
    for plain in resources.PLAIN_BLUEPRINTS:  # probes and metrics, outside /api/v1
        api._app.register_blueprint(plain)


def _request_ids(app: Flask) -> None:
    @app.before_request
    def _start() -> None:
        incoming = request.headers.get("X-Request-ID", "")
        rid = incoming if 0 < len(incoming) <= 100 and incoming.isprintable() else None
        g.request_id = rid or uuid.uuid4().hex
        context.set_request_id(g.request_id)
        context.set_current_org(None)

    @app.after_request
    def _stamp(resp: Response) -> Response:
        resp.headers["X-Request-ID"] = g.get("request_id", "")
        # For gunicorn's access line, written after the tenant context is reset: it reads the
        # WSGI environ (`infra.logging.AccessJsonFormatter`).
        org_id = context.current_org_id()
        if org_id is not None:
            request.environ[ACCESS_ORG_KEY] = str(org_id)
        return resp

    @app.teardown_request
    def _reset(_exc: BaseException | None) -> None:
        context.set_current_org(None)
        context.set_request_id(None)
