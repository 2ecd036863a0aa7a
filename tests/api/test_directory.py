"""Directory CRUD: roles, employees, assets, clients, locations (SPEC §4, §9)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from certifications.directory.service import KINDS
from jobs.models import OutboxMessage

# A valid create body per kind, and a change a PATCH makes.
BODIES = {
    "roles": ({"name": "Welder", "external_id": "R-1"}, {"name": "Senior welder"}),
    "employees": (
        {"name": "Ann Smith", "email": "ann@example.com", "external_id": "E-1"},
        {"email": "ann.smith@example.com"},
    ),
    "assets": ({"name": "Crane 7", "serial_number": "SN-7"}, {"serial_number": "SN-7b"}),
    "clients": (
        {"name": "Northwind", "contact_email": "ops@northwind.example"},
        {"contact_email": "hse@northwind.example"},
    ),
    "locations": ({"name": "Pier 4", "address": "1 Harbour Rd"}, {"address": "2 Harbour Rd"}),
}
PLURALS = sorted(KINDS)


def _create(client, plural, **extra):
    body = dict(BODIES[plural][0])
    body.pop("external_id", None)
    body.update(extra)
    resp = client.post(f"/{plural}", json=body)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def _fanouts(as_tenant, org):
    with as_tenant(org.id) as s:
        rows = s.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.org_id == org.id, OutboxMessage.actor_name == "fanout_employees")
            .order_by(OutboxMessage.created_at)
        ).all()
        return [dict(r.payload) for r in rows]


@pytest.mark.parametrize("plural", PLURALS)
def test_crud_happy_path(api, plural):
    body, change = BODIES[plural]
    resp = api.post(f"/{plural}", json=body)
    assert resp.status_code == 201, resp.get_json()
    created = resp.get_json()
    uuid.UUID(created["id"])
    assert created["active"] is True
    for key, value in body.items():
        assert created[key] == value

    got = api.get(f"/{plural}/{created['id']}")
    assert got.status_code == 200
    assert got.get_json() == created

    resp = api.patch(f"/{plural}/{created['id']}", json=change)
    assert resp.status_code == 200, resp.get_json()
    for key, value in change.items():
        assert resp.get_json()[key] == value
    assert resp.get_json()["name"] == (change.get("name") or body["name"])

    listed = api.get(f"/{plural}").get_json()
    assert [i["id"] for i in listed["items"]] == [created["id"]]
    assert listed["next_cursor"] is None

    resp = api.delete(f"/{plural}/{created['id']}")
    assert resp.status_code == 204
    assert resp.get_data() == b""
    after = api.get(f"/{plural}/{created['id']}").get_json()
    assert after["active"] is False  # soft: the row and its history stay
    assert api.delete(f"/{plural}/{created['id']}").status_code == 204  # idempotent
    resp = api.patch(f"/{plural}/{created['id']}", json={"active": True})
    assert resp.get_json()["active"] is True


@pytest.mark.parametrize("plural", PLURALS)
def test_list_filters_and_pagination(api, plural):
    names = ["delta", "Alpha", "charlie", "bravo", "alpha 100%"]
    ids = {n: _create(api, plural, name=n)["id"] for n in names}
    api.delete(f"/{plural}/{ids['charlie']}")

    def names_of(query: str) -> list[str]:
        resp = api.get(f"/{plural}{query}")
        assert resp.status_code == 200, resp.get_json()
        return [i["name"] for i in resp.get_json()["items"]]

    assert names_of("") == sorted(names)
    assert names_of("?active=true") == ["Alpha", "alpha 100%", "bravo", "delta"]
    assert names_of("?active=false") == ["charlie"]
    assert names_of("?q=ALPHA") == ["Alpha", "alpha 100%"]
    assert names_of("?q=%25") == ["alpha 100%"]  # a literal %, not a wildcard
    assert names_of("?q=zulu") == []

    seen: list[str] = []
    cursor = None
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(f"/{plural}{query}").get_json()
        assert len(page["items"]) <= 2
        seen += [i["name"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(names)


def test_employee_role_filter_and_location_client_filter(api):
    welder = _create(api, "roles", name="Welder")["id"]
    rigger = _create(api, "roles", name="Rigger")["id"]
    _create(api, "employees", name="Ann", role_id=welder)
    _create(api, "employees", name="Bob", role_id=rigger)
    _create(api, "employees", name="Cy")
    items = api.get(f"/employees?role_id={welder}").get_json()["items"]
    assert [i["name"] for i in items] == ["Ann"]
    assert items[0]["role_id"] == welder

    acme = _create(api, "clients", name="Acme")["id"]
    _create(api, "locations", name="Pier", client_id=acme)
    _create(api, "locations", name="Yard")
    items = api.get(f"/locations?client_id={acme}").get_json()["items"]
    assert [i["name"] for i in items] == ["Pier"]


def test_every_filter_with_its_values_bound_and_paged(api_for, make_org):
    """The list statement is built once per shape and its values bound at each request: the
    same shape with other values, wildcards in `q`, and pages after a cursor under filters."""
    org, other = make_org(), make_org()
    api, theirs = api_for(org), api_for(other)
    names = ["a_b", "axb", "a/b", "A%B", "Pump 1", "pump 2", "Crane"]
    ids = {n: _create(api, "assets", name=n, category="Lift" if "ump" in n else "Hoist")["id"]
           for n in names}  # fmt: skip
    yard = _create(api, "locations", name="Yard")["id"]
    api.patch(f"/assets/{ids['Crane']}", json={"location_id": yard})

    def names_of(query: str, client: Any = api) -> list[str]:
        resp = client.get(f"/assets{query}")
        assert resp.status_code == 200, resp.get_json()
        return sorted(i["name"] for i in resp.get_json()["items"])  # (collations differ)

    assert names_of("?q=a_b") == ["a_b"]  # `_` is no wildcard
    assert names_of("?q=a/b") == ["a/b"]  # nor is the escape character special
    assert names_of("?q=a%25b") == ["A%B"]
    assert names_of("?q=PUMP") == ["Pump 1", "pump 2"]
    assert names_of("?q=crane") == ["Crane"]  # the same shape, another value
    assert names_of("?category=%20lift%20") == ["Pump 1", "pump 2"]
    assert names_of("?category=hoist&q=a") == ["A%B", "Crane", "a/b", "a_b", "axb"]
    assert names_of(f"?location_id={yard}") == ["Crane"]
    assert api.patch(f"/assets/{ids['axb']}", json={"external_id": "EXT-1"}).status_code == 200
    assert names_of("?external_id=EXT-1,EXT-2") == ["axb"]
    assert names_of("?external_id=EXT-2") == []  # the same shape, another value
    assert names_of("?updated_since=2000-01-01T00:00:00Z&q=pump") == ["Pump 1", "pump 2"]
    assert names_of("?updated_since=2999-01-01T00:00:00Z") == []
    assert names_of("?q=pump", theirs) == []  # the other org: nothing of ours

    whole = [i["name"] for i in api.get("/assets?q=a&sort=-name").get_json()["items"]]
    assert sorted(whole) == ["A%B", "Crane", "a/b", "a_b", "axb"]
    seen: list[str] = []
    cursor = None
    while True:  # two at a time, filtered and sorted descending
        query = "?limit=2&q=a&sort=-name" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(f"/assets{query}").get_json()
        seen += [i["name"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == whole


def test_a_role_filter_naming_another_orgs_role_finds_nothing(api_for, make_org):
    org, other = make_org(), make_org()
    api, theirs = api_for(org), api_for(other)
    role = _create(theirs, "roles", name="Theirs")["id"]
    _create(theirs, "employees", name="Their worker", role_id=role)
    _create(api, "employees", name="Mine")
    assert api.get(f"/employees?role_id={role}").get_json()["items"] == []
    assert [i["name"] for i in theirs.get(f"/employees?role_id={role}").get_json()["items"]] == [
        "Their worker"
    ]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?limit=0", "limit"),
        ("?limit=501", "limit"),
        ("?limit=99999999999999999999", "limit"),
        ("?cursor=not-a-cursor", "cursor"),
        ("?active=maybe", "active"),
        ("?role_id=nope", "role_id"),
        ("?q=" + "x" * 201, "q"),
    ],
)
def test_list_query_validation(api, query, field):
    resp = api.get(f"/employees{query}")
    assert resp.status_code == 422, resp.get_json()
    errors = resp.get_json()["errors"]
    assert field in (errors.get("query") or errors)


@pytest.mark.parametrize(
    ("plural", "body", "fields"),
    [
        ("roles", {}, {"name"}),
        ("roles", {"name": "   "}, {"name"}),
        ("roles", {"name": "x" * 201}, {"name"}),
        ("roles", {"name": "bad\x00name"}, {"name"}),
        (
            "roles",
            {"name": "R", "id": str(uuid.uuid4()), "org_id": str(uuid.uuid4())},
            {"id", "org_id"},
        ),
        ("roles", {"name": "R", "created_at": "2020-01-01T00:00:00Z"}, {"created_at"}),
        ("employees", {"name": "A", "email": "not-an-email"}, {"email"}),
        ("employees", {"name": "A", "role_id": "nope"}, {"role_id"}),
        ("employees", {"name": "A", "active": "sometimes"}, {"active"}),
        ("employees", {"name": "A", "active": 1}, {"active"}),
        ("clients", {"name": "A", "active": "true"}, {"active"}),
        ("employees", {"name": "A", "external_id": ""}, {"external_id"}),
        ("assets", {"name": "A", "serial_number": "s" * 201}, {"serial_number"}),
        ("clients", {"name": "A", "contact_email": "x@"}, {"contact_email"}),
        ("locations", {"name": "A", "address": "a" * 1001}, {"address"}),
        ("locations", {"name": "A", "client_id": 12}, {"client_id"}),
    ],
)
def test_create_validation(api, plural, body, fields):
    resp = api.post(f"/{plural}", json=body)
    assert resp.status_code == 422, resp.get_json()
    assert set(resp.get_json()["errors"]["json"]) == fields
    assert api.get(f"/{plural}").get_json()["items"] == []


@pytest.mark.parametrize("plural", PLURALS)
def test_patch_validation(api, plural):
    item = _create(api, plural)
    for body, field in [
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
        ({"id": str(uuid.uuid4())}, "id"),
        ({"org_id": str(uuid.uuid4())}, "org_id"),
        ({"active": None}, "active"),
    ]:
        resp = api.patch(f"/{plural}/{item['id']}", json=body)
        assert resp.status_code == 422, (body, resp.get_json())
        assert field in resp.get_json()["errors"]["json"]
    assert api.get(f"/{plural}/{item['id']}").get_json() == item


def test_references_must_be_this_orgs_active_rows(api_for, make_org, as_tenant):
    mine, other = make_org(), make_org()
    api, theirs = api_for(mine), api_for(other)
    foreign_role = _create(theirs, "roles", name="Theirs")["id"]
    foreign_client = _create(theirs, "clients", name="Theirs")["id"]
    for plural, field, value in [
        ("employees", "role_id", foreign_role),
        ("employees", "role_id", str(uuid.uuid4())),
        ("locations", "client_id", foreign_client),
    ]:
        resp = api.post(f"/{plural}", json={"name": "X", field: value})
        assert resp.status_code == 422, resp.get_json()
        assert field in resp.get_json()["errors"]
    item = _create(api, "employees", name="Ann")
    resp = api.patch(f"/employees/{item['id']}", json={"role_id": foreign_role})
    assert resp.status_code == 422
    assert api.get(f"/employees/{item['id']}").get_json()["role_id"] is None
    assert api.get("/locations").get_json()["items"] == []

    old_role = _create(api, "roles", name="Retired")["id"]
    api.delete(f"/roles/{old_role}")
    resp = api.post("/employees", json={"name": "Bob", "role_id": old_role})
    assert resp.status_code == 422
    assert "inactive" in resp.get_json()["errors"]["role_id"][0]


def test_taken_external_id_and_role_name_are_409(api):
    _create(api, "employees", name="Ann", external_id="E-1")
    resp = api.post("/employees", json={"name": "Bob", "external_id": "E-1"})
    assert resp.status_code == 409
    assert "external_id" in resp.get_json()["errors"]
    _create(api, "roles", name="Welder")
    resp = api.post("/roles", json={"name": "Welder"})
    assert resp.status_code == 409
    assert "name" in resp.get_json()["errors"]
    rigger = _create(api, "roles", name="Rigger")
    resp = api.patch(f"/roles/{rigger['id']}", json={"name": "Welder"})
    assert resp.status_code == 409
    # renaming to its own name is not a clash
    assert api.patch(f"/roles/{rigger['id']}", json={"name": "Rigger"}).status_code == 200


def test_role_held_by_active_employees_cannot_be_deleted(api):
    role = _create(api, "roles", name="Welder")["id"]
    ann = _create(api, "employees", name="Ann", role_id=role)["id"]
    _create(api, "employees", name="Bob", role_id=role)
    resp = api.delete(f"/roles/{role}")
    assert resp.status_code == 409
    assert "2 active employees" in resp.get_json()["message"]
    assert api.get(f"/roles/{role}").get_json()["active"] is True

    api.delete(f"/employees/{ann}")
    assert "1 active employee" in api.delete(f"/roles/{role}").get_json()["message"]
    api.patch(f"/employees/{ann}", json={"active": True, "role_id": None})
    bob = api.get(f"/employees?role_id={role}").get_json()["items"][0]["id"]
    api.patch(f"/employees/{bob}", json={"active": False})
    assert api.delete(f"/roles/{role}").status_code == 204
    assert api.get(f"/roles/{role}").get_json()["active"] is False


@pytest.mark.parametrize("plural", PLURALS)
def test_scopes(api_for, org, plural):
    writer = api_for(org, scopes=["directory:write", "directory:read"])
    item = _create(writer, plural)
    reader = api_for(org, scopes=["directory:read"])
    assert reader.get(f"/{plural}").status_code == 200
    assert reader.get(f"/{plural}/{item['id']}").status_code == 200
    for method, path, kw in [
        ("post", f"/{plural}", {"json": BODIES[plural][0]}),
        ("patch", f"/{plural}/{item['id']}", {"json": {"name": "Changed"}}),
        ("delete", f"/{plural}/{item['id']}", {}),
        ("post", f"/{plural}/bulk", {"json": {"items": []}}),
    ]:
        resp = getattr(reader, method)(path, **kw)
        assert resp.status_code == 403, (method, path)
        assert "directory:write" in resp.get_json()["message"]
    outsider = api_for(org, scopes=["certifications:read", "directory:write"])
    for path in (f"/{plural}", f"/{plural}/{item['id']}"):
        resp = outsider.get(path)
        assert resp.status_code == 403
        assert "directory:read" in resp.get_json()["message"]
    assert writer.get(f"/{plural}/{item['id']}").get_json() == item


@pytest.mark.parametrize("plural", PLURALS)
def test_another_orgs_ids_are_404(api_for, make_org, plural):
    mine, other = make_org(), make_org()
    api, theirs = api_for(mine), api_for(other)
    foreign = _create(theirs, plural)
    path = f"/{plural}/{foreign['id']}"
    missing = f"/{plural}/{uuid.uuid4()}"
    for method, kw in [("get", {}), ("patch", {"json": {"name": "Hijacked"}}), ("delete", {})]:
        resp = getattr(api, method)(path, **kw)
        assert resp.status_code == 404, (method, resp.get_json())
        absent = getattr(api, method)(missing, **kw)
        assert absent.status_code == 404
        assert resp.get_json()["message"].split()[0] == absent.get_json()["message"].split()[0]
    assert theirs.get(path).get_json() == foreign  # unchanged, still active
    assert api.get(f"/{plural}").get_json()["items"] == []


def test_employee_changes_request_role_fanout(api, org, as_tenant):
    welder = _create(api, "roles", name="Welder")["id"]
    rigger = _create(api, "roles", name="Rigger")["id"]
    no_role = _create(api, "employees", name="Cy")["id"]
    assert _fanouts(as_tenant, org) == []  # no role: nothing to fan out

    ann = _create(api, "employees", name="Ann", role_id=welder)["id"]
    api.patch(f"/employees/{ann}", json={"name": "Ann B.", "email": "ann@example.com"})
    api.patch(f"/employees/{ann}", json={"role_id": rigger})
    api.patch(f"/employees/{ann}", json={"role_id": rigger})  # no change
    api.delete(f"/employees/{ann}")
    api.delete(f"/employees/{ann}")  # already inactive
    api.patch(f"/employees/{ann}", json={"active": True})
    api.patch(f"/employees/{no_role}", json={"role_id": welder})

    payloads = _fanouts(as_tenant, org)
    assert [p["employee_ids"] for p in payloads] == [[ann], [ann], [ann], [ann], [no_role]]
    for p in payloads:
        assert p["org_id"] == str(org.id)
        uuid.UUID(p["job_id"])
    # the job is pollable by directory clients
    job = api.get(f"/jobs/{payloads[0]['job_id']}")
    assert job.status_code == 200
    assert job.get_json()["kind"] == "role_fanout"


def test_failed_request_writes_no_fanout(api, org, as_tenant):
    role = _create(api, "roles", name="Welder")["id"]
    resp = api.post("/employees", json={"name": "Ann", "role_id": role, "external_id": "E"})
    assert resp.status_code == 201
    resp = api.post("/employees", json={"name": "Bob", "role_id": role, "external_id": "E"})
    assert resp.status_code == 409
    assert len(_fanouts(as_tenant, org)) == 1


def test_openapi_documents_every_directory_route(api):
    doc = api.get("/openapi.json").get_json()
    schemas = doc["components"]["schemas"]
    for plural, kind in KINDS.items():
        title = kind.name.capitalize()
        base = f"/api/v1/{plural}"
        assert set(doc["paths"][base]) >= {"get", "post"}
        assert set(doc["paths"][base + "/{item_id}"]) >= {"get", "patch", "delete"}
        body = doc["paths"][base + "/bulk"]["post"]["requestBody"]["content"]
        assert set(body) == {"application/json", "text/csv"}
        # rows are typed by their schema (an invalid row is still reported, not refused)
        row = body["application/json"]["schema"]["properties"]["items"]["items"]
        assert row == {"$ref": f"#/components/schemas/{title}BulkRow"}
        assert "external_id" in schemas[f"{title}BulkRow"]["required"]
        for name in (title, f"{title}Create", f"{title}Patch"):
            assert schemas[name]["additionalProperties"] is False or name == title
        assert "org_id" not in schemas[f"{title}Create"]["properties"]


def test_role_names_are_unique_ignoring_case(api):
    _create(api, "roles", name="Welder")
    resp = api.post("/roles", json={"name": "WELDER"})
    assert resp.status_code == 409
    assert "name" in resp.get_json()["errors"]
    rigger = _create(api, "roles", name="Rigger")
    resp = api.patch(f"/roles/{rigger['id']}", json={"name": "welder"})
    assert resp.status_code == 409
    assert "name" in resp.get_json()["errors"]
    # its own name in another case is a rename, not a clash
    assert api.patch(f"/roles/{rigger['id']}", json={"name": "RIGGER"}).status_code == 200


def test_role_name_index_ignores_case_in_the_database(org, as_tenant):
    """The database refuses it too (two requests racing past the service's check)."""
    from sqlalchemy.exc import IntegrityError

    from certifications.directory.models import Role

    with as_tenant(org.id) as s:
        s.add(Role(org_id=org.id, name="Welder"))
        s.flush()
        s.add(Role(org_id=org.id, name="wELDER"))
        with pytest.raises(IntegrityError):
            s.flush()


def test_a_race_past_the_role_name_check_is_409_naming_the_field(api, monkeypatch):
    from certifications.directory import service

    _create(api, "roles", name="Welder")
    monkeypatch.setattr(service, "_check_unique", lambda *a, **k: None)
    resp = api.post("/roles", json={"name": "welder"})
    assert resp.status_code == 409
    assert "name" in resp.get_json()["errors"]


@pytest.mark.parametrize(
    "address", ["ed@corp.local", "ed@hr.corp.internal", "ed@CORP", "svc@build.test"]
)
def test_internal_email_domains_are_accepted(api, address):
    """Syntax only: Active Directory and other internal domains are real addresses."""
    resp = api.post("/employees", json={"name": "Ed", "email": address})
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["email"].lower() == address.lower()
    resp = api.post("/clients", json={"name": "Acme", "contact_email": address})
    assert resp.status_code == 201, resp.get_json()


@pytest.mark.parametrize("address", ["ed@", "@corp.local", "ed@@corp.local", "ed corp.local"])
def test_malformed_emails_are_still_422_naming_the_field(api, address):
    resp = api.post("/employees", json={"name": "Ed", "email": address})
    assert resp.status_code == 422
    assert "email" in resp.get_json()["errors"]["json"]


@pytest.mark.parametrize("plural", list(KINDS))
def test_external_id_is_trimmed_on_every_kind(api, plural):
    item = _create(api, plural, external_id="  E-7\t")
    assert item["external_id"] == "E-7"
    item = api.patch(f"/{plural}/{item['id']}", json={"external_id": " E-8 "}).get_json()
    assert item["external_id"] == "E-8"
    # the same id with other spacing is the same id
    resp = api.post(f"/{plural}", json={**_body(plural), "external_id": "E-8  "})
    assert resp.status_code == 409
    assert "external_id" in resp.get_json()["errors"]
    resp = api.post(f"/{plural}", json={**_body(plural), "external_id": "   "})
    assert resp.status_code == 422
    assert "external_id" in resp.get_json()["errors"]["json"]


def _body(plural):
    body = dict(BODIES[plural][0])
    body.pop("external_id", None)
    return body


def test_list_filters_by_external_ids_repeated_or_comma_separated(api):
    for i in range(1, 5):
        _create(api, "assets", name=f"Crane {i}", external_id=f"A-{i}")

    def ids(query):
        resp = api.get(f"/assets?{query}")
        assert resp.status_code == 200, resp.get_json()
        return sorted(item["external_id"] for item in resp.get_json()["items"])

    assert ids("external_id=A-2") == ["A-2"]
    assert ids("external_id=A-1&external_id=A-3") == ["A-1", "A-3"]
    assert ids("external_id=A-1,A-4&external_id=A-2") == ["A-1", "A-2", "A-4"]
    assert ids("external_id=nope") == []


def test_list_filter_updated_since(api, as_tenant, org):
    from datetime import UTC, datetime, timedelta

    from certifications.directory.models import Asset

    old = _create(api, "assets", name="Old", external_id="A-1")
    new = _create(api, "assets", name="New", external_id="A-2")
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    with as_tenant(org.id) as s:
        asset = s.scalar(select(Asset).where(Asset.id == uuid.UUID(old["id"])))
        asset.updated_at = long_ago
        s.commit()
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    resp = api.get("/assets", query_string={"updated_since": since})
    assert resp.status_code == 200, resp.get_json()
    assert [i["id"] for i in resp.get_json()["items"]] == [new["id"]]
    resp = api.get("/assets", query_string={"updated_since": "2019-12-31T00:00:00+00:00"})
    assert len(resp.get_json()["items"]) == 2
    # a time zone is required: a naive instant is ambiguous
    resp = api.get("/assets", query_string={"updated_since": "2026-01-01T00:00:00"})
    assert resp.status_code == 422
    assert "updated_since" in resp.get_json()["errors"]["query"]


def test_a_single_value_parameter_given_twice_is_422_not_the_first(api):
    _create(api, "assets", name="Crane")
    resp = api.get("/assets?active=true&active=false")
    assert resp.status_code == 422
    assert "active" in resp.get_json()["errors"]["query"]
