"""Requirement sources through the HTTP API (issue 15): several roles, rosters with dates,
asset categories and sites, clients and locations; each assignment says why it is required."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from infra.database import utcnow
from tenancy.organizations import org_today
from workers.tick import tick_now


@pytest.fixture
def today() -> date:
    return org_today("UTC", utcnow())


def _post(api, path, body, status=201):
    resp = api.post(path, json=body)
    assert resp.status_code == status, resp.get_json()
    return resp.get_json()


def _csv(api, path, text):
    return api.post(path, data=text.encode(), headers={"Content-Type": "text/csv"})


def _cert(api, name, type_="employee", **sources):
    return _post(api, "/certifications", {"name": name, "type": type_, **sources})["id"]


def _held(api, subject_id):
    """certification id → (required, sources as (kind, name)) of the subject's live assignments."""
    items = api.get(f"/assignments?subject_id={subject_id}&limit=100").get_json()["items"]
    return {
        a["certification_id"]: (a["required"], sorted((s["kind"], s["name"]) for s in a["sources"]))
        for a in items
    }


def test_multi_role_employee_gets_the_union_and_loses_only_what_no_source_requires(api, jobs):
    welder = _post(api, "/roles", {"name": "Welder"})["id"]
    rigger = _post(api, "/roles", {"name": "Rigger", "external_id": "R-RIG"})["id"]
    weld = _cert(api, "Hot work", role_ids=[welder])
    rig = _cert(api, "Rigging", role_ids=[rigger])
    both = _cert(api, "Site safety", role_ids=[welder, rigger])
    emp = _post(api, "/employees", {"name": "Ann", "role_ids": [welder, rigger]})
    assert emp["role_ids"] == [welder, rigger]
    assert emp["role_id"] == welder  # the first role, kept for older clients
    jobs.drain()
    assert _held(api, emp["id"]) == {
        weld: (True, [("role", "Welder")]),
        rig: (True, [("role", "Rigger")]),
        both: (True, [("role", "Rigger"), ("role", "Welder")]),
    }
    # A recorded certificate outlives its source as history (not required); an unrecorded one goes.
    [hot] = api.get(f"/assignments?subject_id={emp['id']}&certification_id={weld}").get_json()[
        "items"
    ]
    resp = api.post(f"/assignments/{hot['id']}/renew", json={"issued_on": "2026-01-05"})
    assert resp.status_code == 200, resp.get_json()

    resp = api.patch(f"/employees/{emp['id']}", json={"role_external_id": "R-RIG"})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["role_ids"] == [rigger]
    jobs.drain()
    assert _held(api, emp["id"]) == {
        weld: (False, []),
        rig: (True, [("role", "Rigger")]),
        both: (True, [("role", "Rigger")]),
    }
    # Back in the role: the recorded one counts again.
    resp = api.patch(f"/employees/{emp['id']}", json={"role_name": ["rigger", "WELDER"]})
    assert resp.get_json()["role_ids"] == [rigger, welder]
    jobs.drain()
    assert _held(api, emp["id"])[weld] == (True, [("role", "Welder")])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role_name": "Nobody"}, "role_name"),
        ({"role_external_id": ["R-NONE"]}, "role_external_id"),
        ({"role_ids": ["00000000-0000-4000-8000-000000000000"]}, "role_ids"),
        ({"role_ids": [], "role_name": "X"}, "role_name"),
    ],
)
def test_roles_named_wrongly_are_refused_naming_the_field(api, body, field):
    resp = api.post("/employees", json={"name": "Bo", **body})
    assert resp.status_code == 422
    assert field in resp.get_json()["errors"]


def test_a_roster_membership_starts_and_ends_its_requirement_on_its_dates(api, org, jobs, today):
    site = _post(api, "/locations", {"name": "Pier 4"})["id"]
    induction = _cert(api, "Pier 4 induction", location_ids=[site])
    later = _post(api, "/employees", {"name": "Later"})["id"]
    leaving = _post(api, "/employees", {"name": "Leaving"})["id"]
    tomorrow = (today + timedelta(days=1)).isoformat()
    joined = _post(api, f"/locations/{site}/members", {"employee_id": later, "starts_on": tomorrow})
    assert joined["job_id"]
    assert joined["employee_name"] == "Later"
    _post(
        api,
        f"/locations/{site}/members",
        {"employee_id": leaving, "starts_on": "2026-01-01", "ends_on": today.isoformat()},
    )
    jobs.drain()
    assert _held(api, later) == {}
    assert _held(api, leaving) == {induction: (True, [("location", "Pier 4")])}
    on_tomorrow = api.get(f"/locations/{site}/members?on={tomorrow}").get_json()["items"]
    assert [m["employee_id"] for m in on_tomorrow] == [later]

    report = tick_now(now=utcnow() + timedelta(days=1), org_id=org.id)["ticks"][str(org.id)]
    assert report["memberships"]["created"] == 1
    assert report["memberships"]["removed"] == 1
    # (Its `sources` are today's, and today it has not started yet: read on the pinned day.)
    assert _held(api, later) == {induction: (True, [])}
    assert _held(api, leaving) == {}


def test_client_membership_requires_and_its_removal_ends(api, jobs):
    acme = _post(api, "/clients", {"name": "Acme"})["id"]
    badge = _cert(api, "Acme badge", client_ids=[acme])
    emp = _post(api, "/employees", {"name": "Cy"})["id"]
    m = _post(api, f"/clients/{acme}/members", {"employee_id": emp})
    jobs.drain()
    assert _held(api, emp) == {badge: (True, [("client", "Acme")])}
    assert api.delete(f"/clients/{acme}/members/{m['id']}").status_code == 204
    jobs.drain()
    assert _held(api, emp) == {}


def test_an_asset_moved_to_a_site_picks_up_the_sites_asset_requirements(api, jobs):
    site = _post(api, "/locations", {"name": "Yard"})["id"]
    inspection = _cert(api, "Yard inspection", "asset", location_ids=[site])
    lifting = _cert(api, "Lifting test", "asset", asset_categories=["crane"])
    crane = _post(api, "/assets", {"name": "Crane 7", "category": "CRANE"})
    jobs.drain()
    assert _held(api, crane["id"]) == {lifting: (True, [("category", "CRANE")])}
    moved = api.patch(f"/assets/{crane['id']}", json={"location_id": site})
    assert moved.status_code == 200
    assert moved.get_json()["location_id"] == site
    jobs.drain()
    assert _held(api, crane["id"]) == {
        lifting: (True, [("category", "CRANE")]),
        inspection: (True, [("location", "Yard")]),
    }
    api.patch(f"/assets/{crane['id']}", json={"location_id": None, "category": "Truck"})
    jobs.drain()
    assert _held(api, crane["id"]) == {}


def test_client_and_location_certifications_by_link_and_for_all(api, jobs):
    acme = _post(api, "/clients", {"name": "Acme"})["id"]
    insured = _cert(api, "Insurance", "client", applies_to_all=True)
    permit = _cert(api, "Site permit", "location", client_ids=[acme])
    north = _post(api, "/locations", {"name": "North", "client_id": acme})["id"]
    other = _post(api, "/clients", {"name": "Other"})["id"]  # created after the "all" rule
    jobs.drain()
    assert _held(api, acme) == {insured: (True, [("all", "all")])}
    assert _held(api, other) == {insured: (True, [("all", "all")])}
    assert _held(api, north) == {permit: (True, [("client", "Acme")])}


def test_manual_assignments_say_so(api):
    emp = _post(api, "/employees", {"name": "Di"})["id"]
    cert = _cert(api, "First aid")
    body = {"certification_id": cert, "subject_type": "employee", "subject_id": emp}
    a = _post(api, "/assignments", body)
    assert [s["kind"] for s in a["sources"]] == ["manual"]


def test_roster_bulk_from_csv_reports_every_row_and_starts_one_job(api, jobs):
    site = _post(api, "/locations", {"name": "Dock"})["id"]
    cert = _cert(api, "Dock induction", location_ids=[site])
    for n in range(3):
        _post(api, "/employees", {"name": f"W{n}", "external_id": f"W-{n}"})
    csv = (
        "employee_external_id,starts_on,ends_on\n"
        "W-0,2026-01-01,\n"
        "W-1,,\n"
        "W-9,,\n"  # unknown
        "W-2,2026-02-01,2026-01-01\n"  # ends before it starts
    )
    resp = _csv(api, f"/locations/{site}/members/bulk", csv)
    assert resp.status_code == 200, resp.get_json()
    report = resp.get_json()
    assert report["counts"] == {"created": 2, "updated": 0, "unchanged": 0, "error": 2}
    assert [r["status"] for r in report["rows"]] == ["created", "created", "error", "error"]
    assert [r["line"] for r in report["rows"]] == [2, 3, 4, 5]
    assert "employee_external_id" in report["rows"][2]["errors"]
    assert "ends_on" in report["rows"][3]["errors"]
    assert report["job_id"]
    jobs.drain()
    again = _csv(
        api,
        f"/locations/{site}/members/bulk",
        "employee_external_id,starts_on\nW-0,2026-01-01\nW-1,\n",
    ).get_json()
    assert again["counts"]["unchanged"] == 2
    assert again["job_id"] is None
    listed = api.get(f"/assignments?certification_id={cert}&limit=10").get_json()["items"]
    assert len(listed) == 2


def test_membership_patch_and_bad_input(api):
    site = _post(api, "/locations", {"name": "Gate"})["id"]
    emp = _post(api, "/employees", {"name": "Ed"})["id"]
    m = _post(api, f"/locations/{site}/members", {"employee_id": emp})
    resp = api.patch(f"/locations/{site}/members/{m['id']}", json={"ends_on": "2026-05-01"})
    assert resp.status_code == 200
    assert resp.get_json()["ends_on"] == "2026-05-01"
    resp = api.patch(f"/locations/{site}/members/{m['id']}", json={"starts_on": "2026-06-01"})
    assert resp.status_code == 422
    assert "ends_on" in resp.get_json()["errors"]
    resp = api.post(f"/locations/{site}/members", json={"employee_id": site})
    assert resp.status_code == 422
    assert "employee_id" in resp.get_json()["errors"]
    other = _post(api, "/locations", {"name": "Other gate"})["id"]
    assert api.patch(f"/locations/{other}/members/{m['id']}", json={}).status_code == 404


# --- the gate check ---------------------------------------------------------------------------


def test_gate_check_blocks_a_worker_whose_site_certification_expires_before_the_date(
    api, jobs, today
):
    welder = _post(api, "/roles", {"name": "Welder"})["id"]
    site = _post(api, "/locations", {"name": "Pier 9"})["id"]
    hot = _cert(api, "Hot work", role_ids=[welder], validity={"months": 24})
    pier = _cert(api, "Pier 9 induction", location_ids=[site], validity={"days": 60})
    emp = _post(api, "/employees", {"name": "Flo", "role_ids": [welder]})["id"]
    _post(api, f"/locations/{site}/members", {"employee_id": emp})
    jobs.drain()
    held = {
        a["certification_id"]: a["id"]
        for a in api.get(f"/assignments?subject_id={emp}").get_json()["items"]
    }
    issued = (today - timedelta(days=30)).isoformat()  # the induction expires in 30 days
    for aid in held.values():
        resp = api.post(f"/assignments/{aid}/renew", json={"issued_on": issued})
        assert resp.status_code == 200, resp.get_json()

    ok = api.get(f"/compliance/check?employee_id={emp}&location_id={site}").get_json()
    assert ok["allowed"] is True
    assert ok["on"] == today.isoformat()
    by_cert = {r["certification_id"]: r for r in ok["requirements"]}
    assert set(by_cert) == {hot, pier}
    assert [s["kind"] for s in by_cert[pier]["sources"]] == ["location"]
    assert by_cert[pier]["sources"][0]["name"] == "Pier 9"

    later = (today + timedelta(days=45)).isoformat()
    blocked = api.get(f"/compliance/check?employee_id={emp}&location_id={site}&on={later}")
    body = blocked.get_json()
    assert body["allowed"] is False
    assert [(b["certification_id"], b["status"]) for b in body["blocking"]] == [(pier, "expired")]


def test_gate_check_applies_the_sites_requirements_to_a_visitor_and_to_equipment(api, jobs):
    acme = _post(api, "/clients", {"name": "Acme"})["id"]
    site = _post(api, "/locations", {"name": "Plant", "client_id": acme})["id"]
    badge = _cert(api, "Acme badge", client_ids=[acme])
    load = _cert(api, "Load test", "asset", location_ids=[site])
    visitor = _post(api, "/employees", {"name": "Gus"})["id"]
    crane = _post(api, "/assets", {"name": "Crane"})["id"]
    jobs.drain()
    alone = api.get(f"/compliance/check?employee_id={visitor}").get_json()
    assert alone == {"allowed": True, "on": alone["on"], "requirements": [], "blocking": []}
    there = api.get(f"/compliance/check?employee_id={visitor}&location_id={site}").get_json()
    assert [(b["certification_id"], b["status"]) for b in there["blocking"]] == [(badge, "missing")]
    assert there["blocking"][0]["sources"] == [{"kind": "client", "id": acme, "name": "Acme"}]
    asset = api.get(f"/compliance/check?asset_id={crane}&location_id={site}").get_json()
    assert [b["certification_id"] for b in asset["blocking"]] == [load]


@pytest.mark.parametrize(
    "query",
    ["", "employee_id={e}&asset_id={a}", "employee_id={e}&on=2026-13-01", "employee_id=nope"],
)
def test_gate_check_input_is_checked(api, query):
    emp = _post(api, "/employees", {"name": "Hal"})["id"]
    asset = _post(api, "/assets", {"name": "Lift"})["id"]
    resp = api.get("/compliance/check?" + query.format(e=emp, a=asset))
    assert resp.status_code == 422


def test_gate_check_of_unknown_ids_is_404(api):
    emp = _post(api, "/employees", {"name": "Ida"})["id"]
    unknown = "00000000-0000-4000-8000-000000000001"
    assert api.get(f"/compliance/check?employee_id={unknown}").status_code == 404
    resp = api.get(f"/compliance/check?employee_id={emp}&location_id={unknown}")
    assert resp.status_code == 404


# --- site and client views --------------------------------------------------------------------


def test_site_members_view_and_the_locations_workforce(api, jobs, today):
    acme = _post(api, "/clients", {"name": "Acme"})["id"]
    site = _post(api, "/locations", {"name": "Dock 3", "client_id": acme})["id"]
    induction = _cert(api, "Dock induction", location_ids=[site])
    badge = _cert(api, "Acme badge", client_ids=[acme])
    ann = _post(api, "/employees", {"name": "Ann"})["id"]
    bob = _post(api, "/employees", {"name": "Bob"})["id"]
    cat = _post(api, "/employees", {"name": "Cat"})["id"]  # on the roster from tomorrow
    for emp in (ann, bob):
        _post(api, f"/locations/{site}/members", {"employee_id": emp})
    tomorrow = today + timedelta(days=1)
    _post(api, f"/locations/{site}/members", {"employee_id": cat, "starts_on": str(tomorrow)})
    jobs.drain()
    [rec] = api.get(f"/assignments?subject_id={ann}&certification_id={induction}").get_json()[
        "items"
    ]
    api.post(f"/assignments/{rec['id']}/renew", json={"issued_on": str(today)})

    page = api.get(f"/views/locations/{site}/members?limit=1").get_json()
    assert [m["name"] for m in page["items"]] == ["Ann"]
    [ann_row] = page["items"]
    assert {(e["certification_id"], e["status"]) for e in ann_row["certifications"]} == {
        (induction, "valid"),
        (badge, "missing"),  # the site's client requires it of whoever works there
    }
    nxt = api.get(f"/views/locations/{site}/members?limit=1&cursor={page['next_cursor']}")
    assert [m["name"] for m in nxt.get_json()["items"]] == ["Bob"]
    assert nxt.get_json()["next_cursor"] is None

    missing = api.get(f"/views/locations/{site}/members?status=valid").get_json()["items"]
    assert [(m["name"], len(m["certifications"])) for m in missing] == [("Ann", 1)]
    later = api.get(f"/views/locations/{site}/members?on={tomorrow}").get_json()["items"]
    assert [m["name"] for m in later] == ["Ann", "Bob", "Cat"]

    csv = api.get(f"/views/locations/{site}/members?format=csv")
    assert csv.status_code == 200
    lines = csv.get_data(as_text=True).strip().splitlines()
    assert lines[0].startswith("employee_id,employee_name")
    assert len(lines) == 1 + 2 * 2  # Ann and Bob, two requirements each

    view = api.get("/views/locations?limit=50").get_json()["items"]
    dock = next(v for v in view if v["id"] == site)
    assert dock["workforce"]["members"] == 2
    assert dock["workforce"]["summary"]["valid"] == 1
    assert dock["workforce"]["summary"]["missing"] == 3
    clients = api.get("/views/clients?limit=50").get_json()["items"]
    assert next(c for c in clients if c["id"] == acme)["workforce"]["members"] == 0


def test_client_members_view(api, jobs):
    acme = _post(api, "/clients", {"name": "Acme"})["id"]
    badge = _cert(api, "Acme badge", client_ids=[acme])
    emp = _post(api, "/employees", {"name": "Dan"})["id"]
    _post(api, f"/clients/{acme}/members", {"employee_id": emp})
    jobs.drain()
    [row] = api.get(f"/views/clients/{acme}/members").get_json()["items"]
    assert [(e["certification_id"], e["status"]) for e in row["certifications"]] == [
        (badge, "missing")
    ]
    assert row["summary"]["missing"] == 1
    unknown = "00000000-0000-4000-8000-000000000002"
    assert api.get(f"/views/clients/{unknown}/members").status_code == 404


def test_an_hr_export_names_roles_by_external_id_or_name(api, jobs):
    _post(api, "/roles", {"name": "Welder", "external_id": "R-W"})
    _post(api, "/roles", {"name": "Rigger", "external_id": "R-R"})
    csv = (
        "external_id,name,role_name,role_external_id\n"
        "E-1,Ann,welder|RIGGER,\n"
        "E-2,Bob,,R-R\n"
        "E-3,Cy,Painter,\n"  # no such role
        "E-4,Di,Welder,R-W\n"  # two ways at once
    )
    report = _csv(api, "/employees/bulk", csv).get_json()
    assert [r["status"] for r in report["rows"]] == ["created", "created", "error", "error"]
    assert "role_name" in report["rows"][2]["errors"]
    assert "role_name" in report["rows"][3]["errors"]
    ann = api.get(f"/employees/{report['rows'][0]['id']}").get_json()
    roles = {r["id"]: r["name"] for r in api.get("/roles").get_json()["items"]}
    assert [roles[r] for r in ann["role_ids"]] == ["Welder", "Rigger"]
    assert roles[ann["role_id"]] == "Welder"
    bob = api.get(f"/employees/{report['rows'][1]['id']}").get_json()
    assert [roles[r] for r in bob["role_ids"]] == ["Rigger"]
    # Re-importing the same export changes nothing.
    again = _csv(api, "/employees/bulk", "external_id,name,role_name\nE-1,Ann,Welder|Rigger\n")
    assert again.get_json()["counts"]["unchanged"] == 1
    assert again.get_json()["job_id"] is None
    listed = api.get(f"/employees?role_id={ann['role_ids'][1]}").get_json()["items"]
    assert {e["name"] for e in listed} == {"Ann", "Bob"}
