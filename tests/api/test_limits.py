"""Request limits in process (the live stack repeats them through gunicorn, in
tests/concurrency/test_input_limits.py): bodies over MAX_REQUEST_BYTES are a 413 in the one
error shape, before the body is read or parsed."""

from __future__ import annotations

import dataclasses
import io
import json
from typing import Any

import pytest

from api import create_app
from api.body import MAX_JSON_VALUES
from tests.conftest import RUNTIME
from tests.support.suite import SETTINGS

LIMIT = 4096


@pytest.fixture(scope="module")
def small_app():
    return create_app(dataclasses.replace(SETTINGS, max_request_bytes=LIMIT), RUNTIME)


@pytest.fixture
def post(small_app, org, token_for):
    client = small_app.test_client()
    headers = {"Authorization": f"Bearer {token_for(org)}"}

    def _post(path: str, **kw: Any) -> Any:
        return client.post("/api/v1" + path, headers={**headers, **kw.pop("headers", {})}, **kw)

    return _post


def _is_413(resp: Any) -> dict[str, Any]:
    assert resp.status_code == 413, resp.get_data()[:300]
    body = resp.get_json()
    assert set(body) >= {"code", "status", "message", "errors"}
    assert str(LIMIT) in body["message"]
    return body


def test_a_body_at_the_limit_is_read(post) -> None:
    body = json.dumps({"name": "Limit role", "external_id": "x" * 100}).encode()
    body += b" " * (LIMIT - len(body))
    resp = post("/roles", data=body, content_type="application/json")
    assert resp.status_code == 201, resp.get_json()


@pytest.mark.parametrize("path", ["/roles", "/roles/bulk", "/certifications"])
def test_a_declared_length_over_the_limit_is_413(post, path: str) -> None:
    body = b'{"name": "' + b"x" * LIMIT + b'"}'
    _is_413(post(path, data=body, content_type="application/json"))
    _is_413(post("/roles/bulk", data=b"name\n" + b"x\n" * LIMIT, content_type="text/csv"))


def _chunked(post, body: bytes, content_type: str) -> Any:
    """A body without Content-Length, as gunicorn hands a chunked one to the app."""
    return post(
        "/roles/bulk",
        input_stream=io.BytesIO(body),
        content_type=content_type,
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )


def test_a_streamed_body_over_the_limit_is_413_not_truncated(post) -> None:
    """Werkzeug's own max-length stream stopped quietly at the limit: a chunked CSV over it
    was imported without its last rows."""
    rows = b"external_id,name\n" + b"".join(b"E%05d,Role %05d\n" % (i, i) for i in range(400))
    assert len(rows) > LIMIT
    _is_413(_chunked(post, rows, "text/csv"))
    _is_413(
        _chunked(post, b'{"items": [' + b'{"name": "x"},' * LIMIT + b"{}]}", "application/json")
    )


def test_a_streamed_body_within_the_limit_is_read_whole(post) -> None:
    rows = b"external_id,name\n" + b"".join(b"S%03d,Role S%03d\n" % (i, i) for i in range(100))
    assert len(rows) < LIMIT
    resp = _chunked(post, rows, "text/csv")
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["counts"]["created"] == 100


# --- values in one body ----------------------------------------------------------------------


def _too_many(resp: Any, location: str) -> None:
    assert resp.status_code == 413, resp.get_data()[:300]
    body = resp.get_json()
    assert set(body) >= {"code", "status", "message", "errors"}
    assert location in body["errors"], body


@pytest.mark.parametrize(
    "body",
    [
        b'{"items": [' + b"{}," * MAX_JSON_VALUES + b"{}]}",  # the attack run's body, smaller
        b'{"items": [' + b"[]," * MAX_JSON_VALUES + b"[]]}",
        b'{"items": [{"name": [' + b'"ab",' * MAX_JSON_VALUES + b'"ab"]}]}',  # in one row
    ],
)
def test_a_json_body_of_too_many_values_is_413_before_parsing(api, body: bytes) -> None:
    for path in ("/roles/bulk", "/roles"):
        resp = api.post(path, data=body, content_type="application/json")
        _too_many(resp, "json")


def test_a_csv_body_of_too_many_cells_is_413(api) -> None:
    body = b"external_id,name\n" + b"a," * MAX_JSON_VALUES + b"b\n"
    _too_many(api.post("/roles/bulk", data=body, content_type="text/csv"), "csv")


def test_more_rows_than_the_maximum_are_422_naming_items(api) -> None:
    body = {"items": [{}] * 10_001}
    resp = api.post("/roles/bulk", json=body)
    assert resp.status_code == 422, resp.get_json()
    assert "items" in resp.get_json()["errors"]["json"]


def test_the_counted_budget_fits_the_largest_bulk(api) -> None:
    """10,000 rows of every employee field (commas in the names too) stay under the budget."""
    rows = [
        {
            "external_id": f"E{i}",
            "name": f"Doe, Jane {i}",
            "email": f"jane{i}@example.com",
            "role_id": None,
            "active": True,
        }
        for i in range(10_000)
    ]
    resp = api.post("/employees/bulk", json={"items": rows})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["counts"]["created"] == 10_000
