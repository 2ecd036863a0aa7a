"""Organizations: operator create, GET/PATCH /org, module flags."""

from __future__ import annotations

import uuid


def test_platform_admin_creates_org(api_for):
    ops = api_for(None, scopes=["platform:admin"], sub="operator")
    resp = ops.post(
        "/organizations",
        json={
            "name": "Acme",
            "timezone": "Europe/Paris",
            "modules": ["hse"],
            "admin_emails": ["a@acme.io"],
        },
    )
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    uuid.UUID(body["id"])
    assert body["timezone"] == "Europe/Paris"
    assert body["modules"] == ["hse"]
    assert body["webhook_secret_set"] is False


def test_platform_token_cannot_use_tenant_endpoints(api_for):
    resp = api_for(None, scopes=["platform:admin"]).get("/org")
    assert resp.status_code == 403


def test_create_org_validation(api_for):
    ops = api_for(None, scopes=["platform:admin"])
    resp = ops.post(
        "/organizations", json={"name": "", "timezone": "Mars/Base", "modules": ["nope"], "id": "x"}
    )
    assert resp.status_code == 422
    errors = resp.get_json()["errors"]["json"]
    assert set(errors) == {"name", "timezone", "modules", "id"}
    assert "json.name" in resp.get_json()["message"]


def test_nul_bytes_refused(api):
    resp = api.patch("/org", json={"name": "bad\x00name"})
    assert resp.status_code == 422
    assert "name" in resp.get_json()["errors"]["json"]


def test_patch_org_and_secret_is_write_only(api, org):
    resp = api.patch(
        "/org",
        json={
            "name": "Renamed",
            "timezone": "America/New_York",
            "admin_emails": ["Boss@Example.com"],
            "webhook_url": "https://hooks.example.com/certs",
            "webhook_secret": "s" * 32,
        },
    )
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["name"] == "Renamed"
    assert body["timezone"] == "America/New_York"
    assert body["admin_emails"] == ["Boss@example.com"]
    assert body["webhook_secret_set"] is True
    assert "webhook_secret" not in body
    assert "s" * 32 not in resp.get_data(as_text=True)
    assert api.get("/org").get_json()["name"] == "Renamed"


def test_patch_org_refuses_mass_assignment(api, org):
    for field, value in [
        ("id", str(uuid.uuid4())),
        ("modules", ["hse"]),
        ("org_id", "x"),
        ("scopes", ["platform:admin"]),
    ]:
        resp = api.patch("/org", json={field: value})
        assert resp.status_code == 422, field
        assert field in resp.get_json()["errors"]["json"]
    assert api.get("/org").get_json()["id"] == str(org.id)


def test_module_toggle(api_for, make_org):
    org = make_org(modules=())
    client = api_for(org)
    resp = client.put("/org/modules/hse", json={"enabled": True})
    assert resp.status_code == 200
    assert resp.get_json()["modules"] == ["hse"]
    resp = client.put("/org/modules/hse", json={"enabled": False})
    assert resp.get_json()["modules"] == []
    assert client.put("/org/modules/payroll", json={"enabled": True}).status_code == 404
    assert client.put("/org/modules/hse", json={}).status_code == 422
    reader = api_for(org, scopes=["certifications:read"])
    assert reader.put("/org/modules/hse", json={"enabled": True}).status_code == 403


def test_orgs_do_not_see_each_other(api_for, make_org):
    a, b = make_org(name="A"), make_org(name="B")
    api_for(a).patch("/org", json={"name": "A renamed"})
    assert api_for(b).get("/org").get_json()["name"] == "B"


def test_unknown_route_and_method_are_json(api):
    resp = api.get("/nope")
    assert resp.status_code == 404
    assert resp.get_json()["code"] == 404
    resp = api.delete("/org")
    assert resp.status_code == 405
    assert "GET" in resp.headers["Allow"]


def test_invalid_json_body_is_400_json(api):
    resp = api.patch("/org", data="{not json", content_type="application/json")
    assert resp.status_code in (400, 422)
    assert resp.get_json()["message"]


def test_health_and_ready(api, backend):
    assert api.get("/healthz").get_json() == {"status": "ok"}
    resp = api.get("/readyz")
    assert resp.status_code == 200, resp.get_json()
    expected = {"database": "ok", "broker": "ok"}
    if backend.is_postgres:
        expected["platform_key"] = "ok"
    assert resp.get_json()["checks"] == expected


def test_openapi_document(api):
    doc = api.get("/openapi.json").get_json()
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    patch = doc["paths"]["/api/v1/org"]["patch"]
    assert patch["security"] == [{"bearerAuth": []}]
    schemas = doc["components"]["schemas"]
    assert schemas["OrganizationPatch"]["additionalProperties"] is False
    assert api.get("/docs").status_code == 200


def test_empty_patch_is_422(api):
    for kw in ({}, {"json": {}}):
        resp = api.patch("/org", **kw)
        assert resp.status_code == 422
        assert resp.get_json()["errors"]["json"]["_schema"]


def test_module_toggle_needs_a_json_boolean(api):
    for value in (1, "true", None):
        assert api.put("/org/modules/hse", json={"enabled": value}).status_code == 422


def test_get_org_reads_the_organization_once(api, org, count_queries):
    with count_queries() as q:
        assert api.get("/org").status_code == 200
    assert len(q.containing("FROM organizations")) == 1, q
