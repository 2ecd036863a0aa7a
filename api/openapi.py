"""The OpenAPI contract, completed in one place for every operation (routes added later included).

flask-smorest documents each view from its decorators; `complete_document` then adds, by rule:

- a stable `operationId` from the method and the path (`operation_id`), a summary when the
  view has no docstring, and unique ids (a clash raises at startup, not in a client);
- the error responses an operation can answer (`error_statuses`), all in the one problem shape
  (`api.errors`, `application/problem+json`), and `RateLimit-*` headers on every answer;
- `required` on response schemas: every property is sent (null when it has no value) unless
  its field says `metadata={"x-optional": True}`;
- an example for every request body, built from the fields' own examples;
- precise nullable objects (`allOf` + `nullable` instead of "any object"), integer formats,
  `servers`, `info.license` and `info.contact`.

`tests/api/test_openapi_contract.py` checks the result's invariants, so a new route that
escapes a rule fails there; `.ci/run` lints it with Redocly and Spectral.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import marshmallow as ma

from api.errors import PROBLEM_JSON

METHODS = ("get", "put", "post", "patch", "delete")
SCHEMA_REF = "#/components/schemas/"
ERROR_SCHEMA = "Error"
OPTIONAL = "x-optional"  # field metadata: a response property that may be absent

LICENSE = {"name": "Proprietary: use of this API is governed by your service agreement"}
CONTACT = {"name": "The operator of this deployment (see the README of the repository)"}
SERVERS = [
    {
        "url": "/",
        "description": "The environment that serves this document (production, staging or "
        "local: where you fetched it).",
        "x-internal": False,
    }
]
BEARER_DESCRIPTION = (
    "A JWT (RFC 7519) in `Authorization: Bearer`, carrying `sub`, `org` and `scopes`. Verified "
    "following RFC8725 (JWT best current practices): one configured algorithm only (HS256 or "
    "RS256, never `none`), `exp` required and bounded, `nbf`/`iat` checked without leeway."
)

# What each error status means wherever it is documented.
ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "The body is not valid JSON, or is nested too deep.",
    401: "No usable bearer token (missing, malformed, expired, unknown organization).",
    403: "The token lacks a scope, or the organization does not have the module.",
    404: "No such resource in this organization (another organization's ids look the same).",
    409: "The change conflicts with the current state, or kept colliding with concurrent changes.",
    412: "`If-Match` does not match the resource's current `ETag` (someone changed it).",
    413: "The body is larger than the limit.",
    415: "The body is not in a media type this operation reads.",
    422: "A field (or query parameter) is invalid; `errors` names each one.",
    428: "This organization requires `If-Match` on this operation.",
    429: "Too many requests: wait `Retry-After` seconds.",
    500: "Internal error (logged with the request id).",
}
RATE_LIMIT_HEADERS: dict[str, dict[str, Any]] = {
    "RateLimit-Limit": {
        "description": "Requests allowed in the current window (when rate limiting is on).",
        "schema": {"type": "integer", "format": "int32", "minimum": 0, "maximum": 1_000_000},
    },
    "RateLimit-Remaining": {
        "description": "Requests left in the current window (when rate limiting is on).",
        "schema": {"type": "integer", "format": "int32", "minimum": 0, "maximum": 1_000_000},
    },
    "RateLimit-Reset": {
        "description": "Seconds until the window resets (when rate limiting is on).",
        "schema": {"type": "integer", "format": "int32", "minimum": 0, "maximum": 86_400},
    },
}
RETRY_AFTER = {
    "description": "Seconds to wait before sending the request again.",
    "schema": {"type": "integer", "format": "int32", "minimum": 0, "maximum": 86_400},
}


class ErrorSchema(ma.Schema):
    """The one error shape (SPEC §7, RFC 9457): every 4xx and 5xx answer of the API."""

    type = ma.fields.String(
        metadata={
            "description": "RFC 9457 problem type: `about:blank` (the HTTP status says it all) "
            "or `urn:certs:problem:<code>` for a machine-readable reason.",
            "example": "about:blank",
            "maxLength": 200,
        }
    )
    title = ma.fields.String(
        metadata={
            "description": "Short summary of the problem type.",
            "example": "Unprocessable Entity",
            "maxLength": 200,
        }
    )
    code = ma.fields.Raw(
        metadata={
            "description": "HTTP status, or a machine-readable reason such as `module_disabled`",
            "oneOf": [
                {"type": "integer", "format": "int32", "minimum": 400, "maximum": 599},
                {"type": "string", "maxLength": 100},
            ],
            "example": 422,
        }
    )
    status = ma.fields.String(
        metadata={"description": "HTTP reason phrase", "example": "Unprocessable Entity"}
    )
    message = ma.fields.String(
        metadata={"description": "What went wrong, as a sentence", "example": "Invalid request"}
    )
    errors = ma.fields.Dict(
        metadata={
            "description": "Field errors: by location (`json`, `query`, `headers`, ...) then "
            "field for what the schemas refuse, by field for what a service refuses; each "
            "leaf is a list of messages.",
            "example": {"json": {"name": ["Missing data for required field."]}},
        }
    )
    http_status = ma.fields.Integer(
        metadata={
            "description": "HTTP status when `code` is a reason",
            "minimum": 400,
            "maximum": 599,
            OPTIONAL: True,
        }
    )


# --- operation ids and summaries ------------------------------------------------------------


def operation_id(path: str, method: str, operation: dict[str, Any]) -> str:
    """`<verb>_<words of the path>`: stable as long as the path and method are.

    A parameter names the item of the collection before it (`/assignments/{assignment_id}` →
    `assignment`); the verb is `list` for a GET answering a page, `get` for another GET,
    `create` for a POST answering 201, `post` for another POST, `update` for PATCH, `put` and
    `delete`. Hyphens become underscores: `GET /certification-groups/{group_id}/move` is
    `post_certification_group_move`.
    """
    words: list[str] = []
    for segment in path.removeprefix("/api/v1").strip("/").split("/"):
        if not segment:
            continue
        if segment.startswith("{"):
            stem = segment.strip("{}").removesuffix("_id")
            last = words[-1] if words else ""
            # `/employees/{item_id}` → employee; `/modules/{module}` → module.
            if last.endswith("s") and (stem in ("item", last[:-1]) or last.endswith(stem + "s")):
                words[-1] = last[:-1]
            else:
                words.append(stem)
        else:
            words.append(segment.replace("-", "_"))
    responses = operation.get("responses", {})
    if method == "get":
        verb = "list" if _answers_page(responses) else "get"
    elif method == "post":
        verb = "create" if "201" in responses else "post"
    else:
        verb = {"patch": "update"}.get(method, method)
    return "_".join([verb, *words])


def _answers_page(responses: dict[str, Any]) -> bool:
    content = (responses.get("200") or {}).get("content", {}).get("application/json", {})
    ref: str = (content.get("schema") or {}).get("$ref", "")
    return ref.endswith("Page")


def _fallback_summary(op_id: str) -> str:
    return op_id.replace("_", " ").capitalize() + "."


# --- error responses ------------------------------------------------------------------------


def error_statuses(path: str, method: str, operation: dict[str, Any]) -> list[int]:
    """The error statuses an operation can answer, from what it takes."""
    statuses = {429, 500}
    if operation.get("security"):
        statuses |= {401, 403}
    if "{" in path:
        statuses.add(404)
    if operation.get("requestBody"):
        statuses |= {400, 413, 415, 422}
    parameters = operation.get("parameters", [])
    if any(p.get("in") == "query" for p in parameters):
        statuses.add(422)
    if method in ("post", "put", "patch", "delete"):
        statuses.add(409)  # a domain conflict, or `conflict_retry` after colliding writes
    if any(p.get("in") == "header" and p.get("name") == "If-Match" for p in parameters):
        statuses |= {412, 428}
    return sorted(statuses)


def _problem_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": SCHEMA_REF + ERROR_SCHEMA}}},
    }


def _response_name(status: int) -> str:
    return "".join(word.capitalize() for word in HTTPStatus(status).name.split("_"))


def _add_error_responses(path: str, method: str, operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    for status in error_statuses(path, method, operation):
        responses.setdefault(str(status), {"$ref": ""})
    responses["default"] = {"$ref": "#/components/responses/UnexpectedError"}
    for status, response in list(responses.items()):
        if "$ref" in response:
            # flask-smorest's own components (`UNAUTHORIZED`, ...) become ours.
            if status != "default" and int(status) in ERROR_DESCRIPTIONS:
                name = _response_name(int(status))
                responses[status] = {"$ref": f"#/components/responses/{name}"}
            continue
        if status == "default" or int(status) >= 400:
            # Hand-documented errors (e.g. `alt_response(415, ...)`) keep their description
            # but always have the problem shape.
            response["content"] = _problem_response("")["content"]
        if status != "default" and int(status) < 500:
            response.setdefault("headers", {}).update(_rate_limit_header_refs())


def _rate_limit_header_refs() -> dict[str, Any]:
    return {name: {"$ref": f"#/components/headers/{name}"} for name in RATE_LIMIT_HEADERS}


def _response_components(doc: dict[str, Any]) -> None:
    """Ours for every status of ERROR_DESCRIPTIONS; any other response component still in use
    (registered by a view) is kept, its errors in the problem shape; unused ones go."""
    components = doc.setdefault("components", {})
    used: set[str] = set()
    for _path, _method, op in operations(doc):
        used |= {r.get("$ref", "").rsplit("/", 1)[-1] for r in op["responses"].values()}
    responses: dict[str, Any] = {
        name: response for name, response in components.get("responses", {}).items() if name in used
    }
    for response in responses.values():
        if "content" in response and ERROR_SCHEMA in str(response["content"]):
            response["content"] = _problem_response("")["content"]
    for status, description in ERROR_DESCRIPTIONS.items():
        if _response_name(status) not in used:
            continue
        response = _problem_response(description)
        if status < 500:
            response["headers"] = _rate_limit_header_refs()
        if status == 401:
            response["headers"]["WWW-Authenticate"] = {
                "description": '`Bearer realm="certs"` (RFC 6750).',
                "schema": {"type": "string", "maxLength": 200},
            }
        if status in (409, 429):
            response["headers"]["Retry-After"] = {"$ref": "#/components/headers/Retry-After"}
        responses[_response_name(status)] = response
    responses["UnexpectedError"] = _problem_response(
        "Any other error (e.g. 503 when the database is unavailable), in the same shape."
    )
    components["responses"] = responses
    # Headers other rules registered (ETag, Location, RateLimit-Policy, ...) stay.
    components["headers"] = {
        **components.get("headers", {}),
        **RATE_LIMIT_HEADERS,
        "Retry-After": RETRY_AFTER,
    }
    text = json.dumps({k: v for k, v in doc.items() if k != "components"}) + json.dumps(
        {k: v for k, v in components.items() if k != "headers"}
    )
    for name in list(components["headers"]):
        if f'"#/components/headers/{name}"' not in text:
            del components["headers"][name]  # registered by a rule whose users were replaced


# --- schemas: required, nullable objects, integer formats -----------------------------------


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(SCHEMA_REF):
            found.add(ref.removeprefix(SCHEMA_REF))
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def _closure(names: set[str], schemas: dict[str, Any]) -> set[str]:
    seen, todo = set(names), list(names)
    while todo:
        found: set[str] = set()
        _refs(schemas.get(todo.pop(), {}), found)
        todo.extend(found - seen)
        seen |= found
    return seen


def _require_response_properties(doc: dict[str, Any]) -> None:
    """Schemas only ever sent (never read) list every property as `required`."""
    schemas = doc["components"]["schemas"]
    sent: set[str] = set()
    read: set[str] = set()
    for _path, _method, op in operations(doc):
        _refs(op.get("responses", {}), sent)
        _refs(op.get("requestBody", {}), read)
        _refs(op.get("parameters", []), read)
    read = _closure(read, schemas)
    for name in _closure(sent, schemas) - read:
        _require_all(schemas[name])


def _require_all(schema: dict[str, Any]) -> None:
    properties = schema.get("properties") or {}
    required = [n for n, prop in properties.items() if not prop.pop(OPTIONAL, False)]
    if required:
        schema["required"] = required
    for prop in properties.values():
        items = prop.get("items")
        if isinstance(items, dict) and items.get("properties"):
            _require_all(items)


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


NULL_ONLY: dict[str, Any] = {"type": "object", "nullable": True, "enum": [None]}
_FORMAT_LENGTHS = {"uuid": 36, "date": 10, "date-time": 40, "email": 320}


def _precise_schemas(doc: dict[str, Any]) -> None:
    """apispec writes a nullable nested object as `anyOf: [$ref, {type: object, nullable}]`,
    which accepts any object: the second branch becomes "null only" (`enum: [null]`), so the
    property is that object or null (generated clients type it `X | None`)."""
    for node in _walk(doc):
        any_of = node.get("anyOf")
        if (
            isinstance(any_of, list)
            and len(any_of) == 2
            and "$ref" in any_of[0]
            and any_of[1] == {"type": "object", "nullable": True}
        ):
            any_of[1] = dict(NULL_ONLY)
        if node.get("type") == "string" and "maxLength" not in node:
            # Longer values of these formats do not parse: the bound is the format's own.
            bound = _FORMAT_LENGTHS.get(node.get("format", ""))
            if bound:
                node["maxLength"] = bound
        if node.get("type") == "integer" and "format" not in node:
            low, high = node.get("minimum"), node.get("maximum")
            small = low is not None and high is not None and -(2**31) <= low and high < 2**31
            node["format"] = "int32" if small else "int64"
        node.pop(OPTIONAL, None)


# --- request examples -----------------------------------------------------------------------


def example_of(schema: dict[str, Any], schemas: dict[str, Any], depth: int = 0) -> Any:
    """A value for `schema` from the examples its fields document (required fields and those
    with an example), else a plain value of its type."""
    if "example" in schema:
        return schema["example"]
    if "$ref" in schema:
        return example_of(schemas[schema["$ref"].removeprefix(SCHEMA_REF)], schemas, depth)
    for key in ("allOf", "oneOf", "anyOf"):
        if schema.get(key):
            return example_of(schema[key][0], schemas, depth)
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        required = set(schema.get("required", []))
        return {
            name: example_of(prop, schemas, depth + 1)
            for name, prop in (schema.get("properties") or {}).items()
            if name in required or ("example" in prop and depth < 3)
        }
    if kind == "array":
        return [example_of(schema.get("items", {}), schemas, depth + 1)]
    return _scalar_example(schema)


_SCALARS: dict[str, Any] = {
    "uuid": "3f2b8c1e-7d4a-4c5e-9b1a-2d6f0e8a7c41",
    "date": "2026-01-15",
    "date-time": "2026-01-15T09:30:00+00:00",
    "email": "ada@example.com",
    "url": "https://hooks.example.com/certs",
    "uri": "https://hooks.example.com/certs",
}


def _scalar_example(schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if kind == "string":
        value = _SCALARS.get(schema.get("format", ""), "Example")
        return value[: schema["maxLength"]] if "maxLength" in schema else value
    if kind == "integer":
        return max(int(schema.get("minimum", 1)), min(1, int(schema.get("maximum", 1))))
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return True
    return None


def _request_examples(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    for _path, _method, op in operations(doc):
        for media in (op.get("requestBody") or {}).get("content", {}).values():
            if "example" not in media and "examples" not in media and "schema" in media:
                media["example"] = example_of(media["schema"], schemas)


# --- the document ---------------------------------------------------------------------------


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def complete_document(doc: dict[str, Any]) -> dict[str, Any]:
    """Apply the rules of this module to flask-smorest's document (in place) and return it."""
    info = doc.setdefault("info", {})
    info.setdefault("license", LICENSE)
    info.setdefault("contact", CONTACT)
    doc.setdefault("servers", SERVERS)
    schemes = doc.get("components", {}).get("securitySchemes", {})
    if "bearerAuth" in schemes:
        schemes["bearerAuth"]["description"] = BEARER_DESCRIPTION
    seen: dict[str, str] = {}
    for path, method, op in operations(doc):
        op_id = op.setdefault("operationId", operation_id(path, method, op))
        where = f"{method.upper()} {path}"
        if op_id in seen:
            raise ValueError(f"operationId {op_id!r} of {where} is also {seen[op_id]}'s")
        seen[op_id] = where
        if not op.get("summary"):
            op["summary"] = _fallback_summary(op_id)
        _add_error_responses(path, method, op)
    _response_components(doc)
    _require_response_properties(doc)
    _precise_schemas(doc)
    _request_examples(doc)
    doc["components"]["schemas"].pop("PaginationMetadata", None)  # flask-smorest's, unused
    return doc
