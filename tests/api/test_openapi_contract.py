"""Invariants of the served OpenAPI document that every operation must keep, so a route
added later (by anyone) fails here rather than in an integrator's generated client.

The rules themselves live in `api.openapi`; these tests read the document as served.
"""

from __future__ import annotations

from typing import Any

import pytest

from api.openapi import SCHEMA_REF, operations

# Every error response an operation can answer, by what it takes (api.openapi.error_statuses).
ALWAYS = {"429", "500"}


@pytest.fixture(scope="module")
def doc(app: Any) -> dict[str, Any]:
    resp = app.test_client().get("/api/v1/openapi.json")
    assert resp.status_code == 200
    return dict(resp.get_json())


def _ops(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found = list(operations(doc))
    assert len(found) > 80
    return found


def _schema(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = doc["components"]["schemas"][node["$ref"].removeprefix(SCHEMA_REF)]
    return node


def test_every_operation_has_a_unique_operation_id_and_a_summary(doc: dict[str, Any]) -> None:
    ids = [op.get("operationId") for _, _, op in _ops(doc)]
    assert all(ids), [f"{m} {p}" for p, m, op in _ops(doc) if not op.get("operationId")]
    assert len(ids) == len(set(ids))
    assert [f"{m} {p}" for p, m, op in _ops(doc) if not op.get("summary")] == []


def test_operation_ids_are_stable(doc: dict[str, Any]) -> None:
    """Generated clients name their functions after these: renaming one breaks every client."""
    by_route = {f"{m.upper()} {p}": op["operationId"] for p, m, op in _ops(doc)}
    assert by_route["GET /api/v1/assignments"] == "list_assignments"
    assert by_route["POST /api/v1/certifications"] == "create_certifications"
    assert by_route["GET /api/v1/employees/{item_id}"] == "get_employee"
    assert by_route["PATCH /api/v1/certification-groups/{group_id}"] == "update_certification_group"
    assert by_route["POST /api/v1/assignments/{assignment_id}/renew"] == "post_assignment_renew"
    assert by_route["GET /api/v1/views/employees/export"] == "get_views_employees_export"


def test_every_request_body_has_an_example(doc: dict[str, Any]) -> None:
    missing = [
        f"{m.upper()} {p} {media_type}"
        for p, m, op in _ops(doc)
        for media_type, media in (op.get("requestBody") or {}).get("content", {}).items()
        if "example" not in media and "examples" not in media
    ]
    assert missing == []


def test_every_response_schema_lists_required(doc: dict[str, Any]) -> None:
    """A success body's object schemas say which properties are always sent (clients then
    type them as present, not `X | Unset`)."""
    missing = set()
    for path, method, op in _ops(doc):
        for status, response in op["responses"].items():
            if status.startswith("2") and "content" in response:
                media = response["content"].get("application/json")
                if media is None:
                    continue
                schema = _schema(doc, media["schema"])
                for name, prop in schema.get("properties", {}).items():
                    inner = _schema(doc, prop.get("items", prop)) if "$ref" in str(prop) else {}
                    if inner.get("properties") and not inner.get("required"):
                        missing.add(f"{method.upper()} {path} {status} .{name}")
                if schema.get("properties") and not schema.get("required"):
                    missing.add(f"{method.upper()} {path} {status}")
    assert sorted(missing) == []


def test_every_error_response_is_the_problem_shape(doc: dict[str, Any]) -> None:
    responses = doc["components"]["responses"]
    problem = doc["components"]["schemas"]["Error"]
    assert set(problem["required"]) >= {"type", "title", "code", "status", "message", "errors"}
    wrong = []
    for path, method, op in _ops(doc):
        statuses = set(op["responses"])
        if not ALWAYS <= statuses:
            wrong.append(f"{method.upper()} {path}: lacks {sorted(ALWAYS - statuses)}")
        if op.get("security") and not {"401", "403"} <= statuses:
            wrong.append(f"{method.upper()} {path}: lacks 401/403")
        if "{" in path and "404" not in statuses:
            wrong.append(f"{method.upper()} {path}: lacks 404")
        if op.get("requestBody") and not {"400", "415", "422"} <= statuses:
            wrong.append(f"{method.upper()} {path}: lacks 400/415/422")
        for status, response in op["responses"].items():
            if status != "default" and int(status) < 400:
                continue
            if "$ref" in response:
                response = responses[response["$ref"].rsplit("/", 1)[-1]]
            if list(response.get("content", {})) != ["application/problem+json"]:
                wrong.append(f"{method.upper()} {path} {status}: {list(response['content'])}")
    assert wrong == []


def test_document_has_servers_license_and_contact(doc: dict[str, Any]) -> None:
    assert doc["servers"]
    assert doc["info"]["license"]["name"]
    assert doc["info"]["contact"]
    assert "RFC8725" in doc["components"]["securitySchemes"]["bearerAuth"]["description"]


def test_nullable_objects_are_that_object_or_null(doc: dict[str, Any]) -> None:
    """Not `{type: object, nullable: true}` beside the reference, which accepts any object."""
    validity = doc["components"]["schemas"]["Certification"]["properties"]["validity"]
    assert validity["anyOf"][0] == {"$ref": SCHEMA_REF + "Validity"}
    assert validity["anyOf"][1]["enum"] == [None]


def test_bulk_rows_are_typed(doc: dict[str, Any]) -> None:
    body = doc["paths"]["/api/v1/employees/bulk"]["post"]["requestBody"]["content"]
    items = body["application/json"]["schema"]["properties"]["items"]["items"]
    assert items == {"$ref": SCHEMA_REF + "EmployeeBulkRow"}
    row = doc["components"]["schemas"]["EmployeeBulkRow"]
    assert "external_id" in row["required"]
    assert body["text/csv"]["schema"]["format"] == "binary"


def test_csv_export_is_its_own_representation(doc: dict[str, Any]) -> None:
    export = doc["paths"]["/api/v1/views/employees/export"]["get"]["responses"]["200"]
    assert list(export["content"]) == ["text/csv"]
    page = doc["paths"]["/api/v1/views/employees"]["get"]["responses"]["200"]
    assert set(page["content"]) == {"application/json", "text/csv"}
