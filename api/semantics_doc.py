"""The OpenAPI side of `api.semantics` and `api.rate_limits`, added to every operation at once.

Run by `create_app` after the blueprints are registered, so every route, present or future, is
documented the way it behaves: `Idempotency-Key` on POST; `Location` on 201; `ETag`,
`If-None-Match` and 304 on single-resource GETs; `If-Match` with 412 (and 428 where an
organization may require it) on PATCH and DELETE; 429 with `Retry-After`, and the `RateLimit-*`
headers on every answer.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from apispec import APISpec
from flask import Flask
from flask.views import MethodView

from api.idempotency import HEADER as IDEMPOTENCY_HEADER
from api.idempotency import REPLAYED_HEADER
from api.preconditions import IF_MATCH_BY_ORG, TAG_LIST
from tenancy.idempotency import MAX_KEY_LENGTH

_VARIABLE = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
RATE_HEADERS = {
    "RateLimit-Limit": "Requests allowed in the current window of the budget closest to "
    "running out (per token subject, per organization, or bulk/export).",
    "RateLimit-Remaining": "Requests left in that window.",
    "RateLimit-Reset": "Seconds until that window resets.",
    "RateLimit-Policy": 'Every budget that counted this request, e.g. "600;w=60, 3000;w=60".',
}


def document_http_semantics(app: Flask, spec: APISpec, prefix: str) -> None:
    components = spec.components
    _register_components(spec)
    rate_headers = {name: components.get_ref("header", name) for name in RATE_HEADERS}
    for path, view_cls in _views(app, prefix):
        operations = spec._paths.get(path)  # apispec keeps the paths here
        if not operations:
            continue
        for method, operation in operations.items():
            if method in ("get", "post", "put", "patch", "delete"):
                _document(spec, operation, method, path, view_cls, rate_headers)
    for response in components.responses.values():  # the shared answers (401, 403, 412, ...)
        response.setdefault("headers", {}).update(rate_headers)


def _views(app: Flask, prefix: str) -> list[tuple[str, type[MethodView] | None]]:
    found = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(prefix + "/"):
            view = app.view_functions.get(rule.endpoint)
            cls = getattr(view, "view_class", None)
            found.append((_VARIABLE.sub(r"{\1}", rule.rule), cls))
    return found


def _document(
    spec: APISpec,
    operation: dict[str, Any],
    method: str,
    path: str,
    view_cls: type[MethodView] | None,
    rate_headers: dict[str, Any],
) -> None:
    components = spec.components
    params = operation.setdefault("parameters", [])
    responses = operation.setdefault("responses", {})

    def respond(status: str, ref: str) -> None:
        responses.setdefault(status, components.get_ref("response", ref))

    if method == "post":
        params.append(components.get_ref("parameter", "IDEMPOTENCY_KEY"))
        respond("422", "UNPROCESSABLE_ENTITY")
    single = path.endswith("}") or any(hasattr(view_cls, m) for m in ("patch", "put", "delete"))
    if method == "get" and single:
        params.append(components.get_ref("parameter", "IF_NONE_MATCH_TAGS"))
        respond("304", "NOT_MODIFIED")
    if method in ("patch", "delete") and hasattr(view_cls, "get"):
        params.append(components.get_ref("parameter", "IF_MATCH_TAGS"))
        respond("412", "PRECONDITION_FAILED")
        if method == "patch" and getattr(view_cls, IF_MATCH_BY_ORG, False):
            respond("428", "PRECONDITION_REQUIRED")
    respond("429", "RATE_LIMITED")
    for status, response in responses.items():
        if "$ref" in response:
            continue
        headers = response.setdefault("headers", {})
        headers.update(rate_headers)
        if status == "201":
            headers["Location"] = components.get_ref("header", "LOCATION")
        if method == "post" and status.startswith("2"):
            headers[REPLAYED_HEADER] = components.get_ref("header", "IDEMPOTENT_REPLAYED")
        if status == "200" and (method == "patch" or (method == "get" and single)):
            headers["ETag"] = components.get_ref("header", "ETAG")


def _register_components(spec: APISpec) -> None:
    components = spec.components
    for name, description in RATE_HEADERS.items():
        components.header(name, {"description": description, "schema": {"type": "string"}})
    components.header(
        "LOCATION",
        {"description": "Where the created resource lives.", "schema": {"type": "string"}},
    )
    components.header(
        "IDEMPOTENT_REPLAYED",
        {
            "description": f"`true` when this is the stored answer to an earlier request with "
            f"the same {IDEMPOTENCY_HEADER}.",
            "schema": {"type": "string", "enum": ["true"]},
        },
    )
    components.header(
        "RETRY_AFTER",
        {"description": "Seconds to wait before sending again.", "schema": {"type": "integer"}},
    )
    components.parameter(
        "IDEMPOTENCY_KEY",
        "header",
        {
            "name": IDEMPOTENCY_HEADER,
            "required": False,
            "description": "Makes a retry safe: a request sent again with the same key within "
            "24 hours gets the first answer (status and body) instead of running again; the "
            "same key with another request is 422. Keys belong to the organization. A request "
            "that failed stores nothing.",
            "schema": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_KEY_LENGTH,
                "pattern": "^[ -~]+$",  # printable ASCII
            },
            "example": "5f0c1d9e-3b7a-4c1e-9d2f-8a6b4e2c7f10",
        },
    )
    tags = {"type": "string", "pattern": TAG_LIST}
    components.parameter(
        "IF_MATCH_TAGS",
        "header",
        {
            "name": "If-Match",
            "required": False,
            "description": "The ETag of the version you read: the change is made only if the "
            "resource is still that version (412 otherwise). `*` matches any version.",
            "schema": tags,
        },
    )
    components.parameter(
        "IF_NONE_MATCH_TAGS",
        "header",
        {
            "name": "If-None-Match",
            "required": False,
            "description": "ETags you hold: 304 without a body when one is still current.",
            "schema": tags,
        },
    )
    # Same content as flask-smorest's own error responses (whatever the error shape), plus
    # the rate limit's headers.
    too_many = copy.deepcopy(components.responses_lazy.get("TOO_MANY_REQUESTS", {}))
    too_many["description"] = "Rate limit reached: wait `Retry-After` seconds."
    too_many["headers"] = {"Retry-After": components.get_ref("header", "RETRY_AFTER")}
    components.response("RATE_LIMITED", too_many)
