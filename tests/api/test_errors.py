"""The one error shape (RFC 9457 problem + SPEC §7 members) for schema, service and auth
errors; malformed JSON is a 400 and a body in another media type a 415, in that shape."""

from __future__ import annotations

from typing import Any

PROBLEM = "application/problem+json"


def _problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.get_data(as_text=True)[:500]
    assert resp.mimetype == PROBLEM
    body = resp.get_json()
    assert list(body)[:2] == ["type", "title"], body  # RFC 9457 members first
    assert set(body) >= {"type", "title", "code", "status", "message", "errors"}, body
    assert isinstance(body["message"], str)
    assert body["message"]
    assert isinstance(body["errors"], dict)
    return dict(body)


def test_schema_error_is_the_problem_shape(api):
    body = _problem(api.post("/roles", json={"name": ""}), 422)
    assert body["type"] == "about:blank"
    assert body["title"] == body["status"] == "Unprocessable Entity"
    assert body["code"] == 422
    assert list(body["errors"]["json"]) == ["name"]  # field paths unchanged


def test_service_error_is_the_problem_shape(api):
    api.post("/roles", json={"name": "Welder"})
    body = _problem(api.post("/roles", json={"name": "WELDER"}), 409)
    assert body["type"] == "about:blank"
    assert body["title"] == "Conflict"
    assert body["code"] == 409


def test_auth_error_is_the_problem_shape_with_www_authenticate(api):
    resp = api.client.get("/api/v1/org")  # no token
    body = _problem(resp, 401)
    assert body["title"] == "Unauthorized"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    resp = api.client.get("/api/v1/org", headers={"Authorization": "Bearer not.a.jwt"})
    _problem(resp, 401)
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_reason_code_has_a_problem_type_of_its_own(api_for, make_org):
    client = api_for(make_org(modules=[]))
    body = _problem(client.get("/certifications"), 403)
    assert body["code"] == "module_disabled"
    assert body["http_status"] == 403
    assert body["type"] == "urn:certs:problem:module_disabled"


def test_malformed_json_is_a_400_naming_where_it_broke(api):
    resp = api.post("/roles", data='{"name": "x",', content_type="application/json")
    body = _problem(resp, 400)
    assert body["message"].startswith("The request body is not valid JSON: ")
    assert "line 1" in body["message"]
    assert list(body["errors"]) == ["json"]
    # Not the old HTML-era sentence of werkzeug.
    assert "browser" not in body["message"]
    _problem(api.patch("/org", data=b"\xff\xfe{}", content_type="application/json"), 400)


def test_a_form_encoded_body_to_a_json_endpoint_is_415(api):
    resp = api.post("/roles", data={"name": "Welder"})  # application/x-www-form-urlencoded
    body = _problem(resp, 415)
    assert "application/json" in body["message"]
    assert body["errors"] == {"headers": {"Content-Type": ["Send application/json."]}}
    assert api.get("/roles").get_json()["items"] == []  # nothing written
    _problem(api.patch("/org", data="name=x", content_type="text/plain"), 415)


def test_an_empty_body_without_content_type_is_still_read_as_no_fields(api):
    """Not a 415: nothing was sent in another media type; the schema names what is missing."""
    body = _problem(api.post("/roles"), 422)
    assert "name" in body["errors"]["json"]


def test_unknown_module_lists_the_valid_ones(api):
    body = _problem(api.put("/org/modules/production", json={"enabled": True}), 404)
    assert "hse" in body["message"]
    assert body["errors"] == {"module": ["One of: hse."]}


def test_group_patch_is_partial(api):
    gid = api.post("/certification-groups", json={"name": "Safety"}).get_json()["id"]
    resp = api.patch(f"/certification-groups/{gid}", json={})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["name"] == "Safety"


def test_views_negotiate_csv_on_accept(api):
    resp = api.get("/views/employees", headers={"Accept": "text/csv"})
    assert resp.status_code == 200
    assert resp.mimetype == "text/csv"
    assert resp.get_data(as_text=True).startswith("subject_type,")
    assert api.get("/views/employees").mimetype == "application/json"
    export = api.get("/views/employees/export")
    assert export.mimetype == "text/csv"
    assert export.get_data() == resp.get_data()
