"""Bulk upsert by external_id and CSV import: per-row reports, atomic mode, fan-out requests."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from certifications.directory.models import Employee
from jobs.models import OutboxMessage


def _fanouts(as_tenant, org):
    with as_tenant(org.id) as s:
        rows = s.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.org_id == org.id, OutboxMessage.actor_name == "fanout_employees")
            .order_by(OutboxMessage.created_at)
        ).all()
        return [dict(r.payload) for r in rows]


def _bulk(client, plural, items, query=""):
    resp = client.post(f"/{plural}/bulk{query}", json={"items": items})
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def _csv(client, plural, text, query="", status=200):
    resp = client.post(
        f"/{plural}/bulk{query}", data=text.encode(), headers={"Content-Type": "text/csv"}
    )
    assert resp.status_code == status, resp.get_json()
    return resp.get_json()


def test_bulk_creates_updates_and_reports_every_row(api):
    first = _bulk(
        api,
        "assets",
        [
            {"external_id": "A1", "name": "Crane", "serial_number": "S1"},
            {"external_id": "A2", "name": "Forklift"},
        ],
    )
    assert first["counts"] == {"created": 2, "updated": 0, "unchanged": 0, "error": 0}
    assert [r["status"] for r in first["rows"]] == ["created", "created"]
    assert first["job_id"] is None
    a1 = first["rows"][0]["id"]

    second = _bulk(
        api,
        "assets",
        [
            {"external_id": "A1", "name": "Crane", "serial_number": "S1"},  # same
            {"external_id": "A2", "name": "Forklift 2"},
            {"external_id": "A3", "name": ""},
            {"external_id": "A4", "name": "Drill", "org_id": str(uuid.uuid4())},
            "not an object",
            {"external_id": "A5", "name": "Van", "active": False},
            {"external_id": "A6", "name": "Saw", "active": 0},
        ],
    )
    assert second["counts"] == {"created": 1, "updated": 1, "unchanged": 1, "error": 4}
    rows = second["rows"]
    assert [r["index"] for r in rows] == [0, 1, 2, 3, 4, 5, 6]
    assert "active" in rows[6]["errors"]  # JSON rows take only true/false
    assert [r["status"] for r in rows] == [
        "unchanged",
        "updated",
        "error",
        "error",
        "error",
        "created",
        "error",
    ]
    assert rows[0]["id"] == a1
    assert "name" in rows[2]["errors"]
    assert rows[2]["message"].startswith("name:")
    assert "org_id" in rows[3]["errors"]
    assert "object" in rows[4]["message"]

    listed = {i["external_id"]: i for i in api.get("/assets").get_json()["items"]}
    assert set(listed) == {"A1", "A2", "A5"}
    assert listed["A2"]["name"] == "Forklift 2"
    assert listed["A5"]["active"] is False
    assert listed["A1"]["id"] == a1
    # fields a row leaves out keep their value
    _bulk(api, "assets", [{"external_id": "A1", "name": "Crane X"}])
    assert api.get(f"/assets/{a1}").get_json()["serial_number"] == "S1"


def test_bulk_atomic_writes_nothing_when_a_row_fails(api):
    items = [{"external_id": "C1", "name": "Acme"}, {"external_id": "C2", "contact_email": "x"}]
    resp = api.post("/clients/bulk?atomic=true", json={"items": items})
    assert resp.status_code == 422
    body = resp.get_json()
    assert set(body["errors"]["items"]["1"]) == {"name", "contact_email"}
    assert body["errors"]["report"]["counts"]["error"] == 1
    assert "id" not in body["errors"]["report"]["rows"][0]
    assert api.get("/clients").get_json()["items"] == []

    ok = _bulk(api, "clients", items[:1], "?atomic=true")
    assert ok["counts"]["created"] == 1


def test_bulk_duplicates_and_foreign_references(api_for, make_org):
    mine, other = make_org(), make_org()
    api, theirs = api_for(mine), api_for(other)
    foreign_client = theirs.post("/clients", json={"name": "Theirs"}).get_json()["id"]
    client = api.post("/clients", json={"name": "Mine"}).get_json()["id"]
    gone = api.post("/clients", json={"name": "Gone"}).get_json()["id"]
    api.delete(f"/clients/{gone}")
    report = _bulk(
        api,
        "locations",
        [
            {"external_id": "L1", "name": "Pier", "client_id": client},
            {"external_id": "L1", "name": "Pier again"},
            {"external_id": "L2", "name": "Yard", "client_id": foreign_client},
            {"external_id": "L3", "name": "Dock", "client_id": str(uuid.uuid4())},
            {"external_id": "L4", "name": "Shed", "client_id": gone},
        ],
    )
    statuses = [r["status"] for r in report["rows"]]
    assert statuses == ["created", "error", "error", "error", "error"]
    assert "row 0" in report["rows"][1]["errors"]["external_id"][0]
    assert report["rows"][2]["errors"] == {"client_id": ["Unknown client."]}
    assert report["rows"][3]["errors"] == {"client_id": ["Unknown client."]}
    assert "inactive" in report["rows"][4]["errors"]["client_id"][0]
    items = api.get("/locations").get_json()["items"]
    assert [(i["name"], i["client_id"]) for i in items] == [("Pier", client)]
    assert theirs.get("/locations").get_json()["items"] == []


def test_bulk_roles_refuse_taken_names(api):
    api.post("/roles", json={"name": "Welder"})  # no external id
    report = _bulk(
        api,
        "roles",
        [
            {"external_id": "R1", "name": "Welder"},
            {"external_id": "R2", "name": "Rigger"},
            {"external_id": "R3", "name": "Rigger"},
        ],
    )
    assert [r["status"] for r in report["rows"]] == ["error", "created", "error"]
    # a role keeping its own name is not a clash
    again = _bulk(api, "roles", [{"external_id": "R2", "name": "Rigger"}])
    assert again["rows"][0]["status"] == "unchanged"


def test_user_sub_is_unique_per_org_in_bulk_and_single_writes(api, api_for, make_org):
    report = _bulk(
        api,
        "employees",
        [
            {"external_id": "E1", "name": "Ann", "user_sub": "idp|ann"},
            {"external_id": "E2", "name": "Bob", "user_sub": "idp|ann"},
            {"external_id": "E3", "name": "Cy", "user_sub": None},
            {"external_id": "E4", "name": "Di"},
        ],
    )
    assert [r["status"] for r in report["rows"]] == ["created", "error", "created", "created"]
    assert "user_sub" in report["rows"][1]["errors"]
    # Another row taking it later is refused; the holder keeping it is not a clash.
    taken = _bulk(api, "employees", [{"external_id": "E3", "name": "Cy", "user_sub": "idp|ann"}])
    assert taken["rows"][0]["status"] == "error"
    kept = _bulk(api, "employees", [{"external_id": "E1", "name": "Ann", "user_sub": "idp|ann"}])
    assert kept["rows"][0]["status"] == "unchanged"
    single = api.post("/employees", json={"name": "Eve", "user_sub": "idp|ann"})
    assert single.status_code == 409
    assert "user_sub" in single.get_json()["errors"]
    ok = api.post("/employees", json={"name": "Eve", "user_sub": "idp|eve"}).get_json()
    assert ok["user_sub"] == "idp|eve"
    # Unique per org, not across orgs.
    other = api_for(make_org())
    assert other.post("/employees", json={"name": "Ann", "user_sub": "idp|ann"}).status_code == 201


def test_bulk_limits_and_envelope(api):
    too_many = [{"external_id": str(i), "name": "x"} for i in range(10_001)]
    resp = api.post("/employees/bulk", json={"items": too_many})
    assert resp.status_code == 422
    assert "items" in resp.get_json()["errors"]["json"]
    for body in ({}, {"items": "x"}, {"items": [], "extra": 1}, [{"name": "x"}]):
        resp = api.post("/employees/bulk", json=body)
        assert resp.status_code == 422, body
    resp = api.post("/employees/bulk", data="a,b", headers={"Content-Type": "text/plain"})
    assert resp.status_code == 415
    resp = api.post("/employees/bulk?atomic=perhaps", json={"items": []})
    assert resp.status_code == 422
    assert "atomic" in resp.get_json()["errors"]["query"]
    assert _bulk(api, "employees", [])["counts"]["created"] == 0


def test_bulk_employees_request_one_fanout(api, org, as_tenant):
    welder = api.post("/roles", json={"name": "Welder"}).get_json()["id"]
    rigger = api.post("/roles", json={"name": "Rigger"}).get_json()["id"]
    first = _bulk(
        api,
        "employees",
        [
            {"external_id": "E1", "name": "Ann", "role_id": welder},
            {"external_id": "E2", "name": "Bob", "role_id": welder},
            {"external_id": "E3", "name": "Cy"},  # no role: no fan-out
            {"external_id": "E4", "name": "Di", "role_id": welder, "active": False},
        ],
    )
    ids = {r["external_id"]: r["id"] for r in first["rows"]}
    payloads = _fanouts(as_tenant, org)
    assert len(payloads) == 1
    assert sorted(payloads[0]["employee_ids"]) == sorted([ids["E1"], ids["E2"]])
    assert first["job_id"] == payloads[0]["job_id"]

    second = _bulk(
        api,
        "employees",
        [
            {"external_id": "E1", "name": "Ann", "role_id": rigger},  # role changed
            {"external_id": "E2", "name": "Bobby"},  # name only
            {"external_id": "E3", "name": "Cy", "active": False},  # deactivated
            {"external_id": "E4", "name": "Di", "active": True},  # reactivated
        ],
    )
    assert second["counts"]["updated"] == 4
    payloads = _fanouts(as_tenant, org)
    assert len(payloads) == 2
    assert sorted(payloads[1]["employee_ids"]) == sorted([ids["E1"], ids["E3"], ids["E4"]])
    assert second["job_id"] == payloads[1]["job_id"]

    third = _bulk(api, "employees", [{"external_id": "E2", "name": "Bobby"}])
    assert third["job_id"] is None
    assert len(_fanouts(as_tenant, org)) == 2


def test_csv_import_reports_rows_with_line_numbers(api, org, as_tenant):
    role = api.post("/roles", json={"name": "Welder"}).get_json()["id"]
    text = (
        "\ufeffexternal_id,name,email,role_id,active\r\n"
        f"E1,Ann Smith,ann@example.com,{role},true\r\n"
        'E2,"Bob, Jr.",,,\r\n'
        "E3,,bad-email,,\r\n"
        f"E4,Di,di@example.com,{uuid.uuid4()},no\r\n"
        "E5,Eve,,,No\r\n"
    )
    report = _csv(api, "employees", text)
    assert report["counts"] == {"created": 3, "updated": 0, "unchanged": 0, "error": 2}
    rows = report["rows"]
    assert [(r["index"], r["line"], r["status"]) for r in rows] == [
        (0, 2, "created"),
        (1, 3, "created"),
        (2, 4, "error"),
        (3, 5, "error"),
        (4, 6, "created"),
    ]
    assert api.get(f"/employees/{rows[4]['id']}").get_json()["active"] is False
    assert set(rows[2]["errors"]) == {"name", "email"}
    assert rows[3]["errors"] == {"role_id": ["Unknown role."]}
    bob = api.get(f"/employees/{rows[1]['id']}").get_json()
    assert (bob["name"], bob["email"], bob["active"]) == ("Bob, Jr.", None, True)
    assert report["job_id"] == _fanouts(as_tenant, org)[0]["job_id"]

    # an empty cell clears a nullable field; an absent column keeps it
    again = _csv(api, "employees", "external_id,name,email\nE1,Ann Smith,\n")
    assert again["rows"][0]["status"] == "updated"
    ann = api.get(f"/employees/{rows[0]['id']}").get_json()
    assert (ann["email"], ann["role_id"]) == (None, role)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("external_id,name,salary\nE1,Ann,10\n", "header"),
        ("external_id,name,name\nE1,Ann,Ann\n", "header"),
        ("", "header"),
        ("id,external_id,name\nx,E1,Ann\n", "header"),
    ],
)
def test_csv_bad_header_is_422(api, text, key):
    body = _csv(api, "employees", text, status=422)
    assert key in body["errors"]["csv"]
    assert api.get("/employees").get_json()["items"] == []


def test_csv_odd_rows_and_encoding(api):
    report = _csv(api, "assets", "external_id,name\nA1,Crane,extra\nA2,Drill\nA3,bad\x00\n")
    assert [r["status"] for r in report["rows"]] == ["error", "created", "error"]
    assert "more cells" in report["rows"][0]["message"]
    assert "name" in report["rows"][2]["errors"]
    resp = api.post(
        "/assets/bulk",
        data=b"external_id,name\nA1,\xff\xfe\n",
        headers={"Content-Type": "text/csv"},
    )
    assert resp.status_code == 422
    assert "csv" in resp.get_json()["errors"]
    body = _csv(api, "assets", "external_id,name\nA9,Crane\nA10,\n", "?atomic=true", status=422)
    assert "1" in body["errors"]["items"]
    assert [i["external_id"] for i in api.get("/assets").get_json()["items"]] == ["A2"]


def test_bulk_is_tenant_scoped(api_for, make_org, as_tenant):
    a, b = make_org(), make_org()
    _bulk(api_for(b), "employees", [{"external_id": "E1", "name": "B's Ann"}])
    report = _bulk(api_for(a), "employees", [{"external_id": "E1", "name": "A's Ann"}])
    assert report["rows"][0]["status"] == "created"  # same external id, other org: a new row
    with as_tenant(b.id) as s:
        assert s.scalar(select(Employee.name)) == "B's Ann"
        assert s.scalar(select(func.count()).select_from(Employee)) == 1


@pytest.mark.parametrize(
    "address",
    [
        "Ann.Smith@Example.COM",
        "a+tag@sub.example.co.uk",
        "o'brien@example.ie",
        "x@localhost",
        "x@b.test",
        "x@example",
        "x@x.123",
        "x@-bad-.com",
        "a..b@example.com",
        ".a@example.com",
        "a.@example.com",
        "a" * 65 + "@example.com",
        "a@" + "b" * 64 + ".com",
        "a@" + ("b" * 60 + ".") * 4 + "com",
        '"quoted"@example.com',
        "no-at-sign",
        "two@@example.com",
        "a@b@example.com",
        "ünï@example.com",
        "a@exämple.com",
        "a@example.com ",
        "",
    ],
)
def test_directory_email_agrees_with_email_validator(address):
    from marshmallow import ValidationError

    from api.fields import Email
    from api.schemas.directory import DirectoryEmail

    def outcome(field):
        try:
            return field.deserialize(address)
        except ValidationError as exc:
            return exc.messages

    assert outcome(DirectoryEmail()) == outcome(Email())


def test_a_kept_reference_may_be_inactive(api):
    client = api.post("/clients", json={"name": "Acme"}).get_json()["id"]
    row = {"external_id": "L1", "name": "Pier", "client_id": client}
    location = _bulk(api, "locations", [row])["rows"][0]["id"]
    api.delete(f"/clients/{client}")
    again = _bulk(
        api, "locations", [row, {"external_id": "L2", "name": "Yard", "client_id": client}]
    )
    assert [r["status"] for r in again["rows"]] == ["unchanged", "error"]
    resp = api.patch(f"/locations/{location}", json={"client_id": client, "name": "Pier 2"})
    assert resp.status_code == 200, resp.get_json()
    other = api.post("/locations", json={"name": "Dock"}).get_json()["id"]
    assert api.patch(f"/locations/{other}", json={"client_id": client}).status_code == 422


def test_a_held_role_cannot_be_deactivated_by_patch_or_bulk(api):
    roles = _bulk(api, "roles", [{"external_id": "R1", "name": "Welder"}])
    role = roles["rows"][0]["id"]
    _bulk(api, "employees", [{"external_id": "E1", "name": "Ann", "role_id": role}])
    resp = api.patch(f"/roles/{role}", json={"active": False})
    assert resp.status_code == 409
    assert "1 active employee" in resp.get_json()["message"]
    report = _bulk(api, "roles", [{"external_id": "R1", "name": "Welder", "active": False}])
    assert report["rows"][0]["status"] == "error"
    assert "1 active employee" in report["rows"][0]["errors"]["active"][0]
    assert api.get(f"/roles/{role}").get_json()["active"] is True
    _bulk(api, "employees", [{"external_id": "E1", "name": "Ann", "active": False}])
    report = _bulk(api, "roles", [{"external_id": "R1", "name": "Welder", "active": False}])
    assert report["rows"][0]["status"] == "updated"


def test_bulk_upsert_writes_one_audit_event(api, org, as_tenant):
    from sqlalchemy import select

    from certifications.audit.models import AuditEvent

    rows = [{"external_id": f"aud-{i}", "name": f"Asset {i}"} for i in range(3)]
    first = api.post("/assets/bulk", json={"items": rows}).get_json()
    rows[0]["name"] = "Renamed"
    api.post("/assets/bulk", json={"items": rows})
    with as_tenant(org.id) as s:
        events = s.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "bulk_upsert")
            .order_by(AuditEvent.created_at)
        ).all()
    assert [e.entity_type for e in events] == ["asset", "asset"]
    assert sorted(events[0].after["created"]) == sorted(r["id"] for r in first["rows"])
    assert events[1].after == {"created": [], "updated": [first["rows"][0]["id"]]}
    assert events[0].actor == "tester"


def test_bulk_external_ids_are_trimmed_and_match(api):
    first = _bulk(api, "assets", [{"external_id": " A-1 ", "name": "Crane"}])
    assert first["rows"][0]["status"] == "created"
    again = _bulk(api, "assets", [{"external_id": "A-1", "name": "Crane"}])
    assert again["rows"][0]["status"] == "unchanged"
    csv = _csv(api, "assets", "external_id,name\n  A-1  ,Crane\n")
    assert csv["rows"][0]["status"] == "unchanged"
