"""The view switcher: subjects with their certifications, the group tree, CSV exports."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from certifications.assignments.models import Assignment
from certifications.catalog.models import (
    Certification,
    CertificationClient,
    CertificationGroup,
    CertificationGroupMember,
)
from certifications.directory.models import Asset, Client, Employee, Location, Role
from tests.support.queries import data_only

ZERO = {"valid": 0, "upcoming": 0, "missing": 0, "expires_soon": 0, "expired": 0, "revoked": 0}


def counts(**kw: int) -> dict[str, int]:
    return {**ZERO, **kw}


def vcounts(**kw: int) -> dict[str, int]:
    """A view's per-subject summary: the counts per status, and `exempt`."""
    return {**ZERO, "exempt": 0, **kw}


def build_directory(as_tenant: Any, org: Any) -> SimpleNamespace:
    """A directory with every status, revoked history, nested groups and an archived one."""
    ns = SimpleNamespace()
    with as_tenant(org.id) as s:
        ns.welder = Role(name="Welder")
        ns.driver = Role(name="Driver")
        ns.acme = Client(name="Acme", external_id="C1")
        ns.globex = Client(name="Globex")
        s.add_all([ns.welder, ns.driver, ns.acme, ns.globex])
        s.flush()
        ns.alice = Employee(
            name="Alice", email="alice@x.io", role_id=ns.welder.id, external_id="E1"
        )
        ns.bob = Employee(name="Bob", role_id=ns.driver.id)
        ns.carol = Employee(name="Carol", role_id=ns.welder.id, active=False, external_id="=1+2")
        ns.dan = Employee(name="Dan")
        ns.crane = Asset(name="Crane", serial_number="S1")
        ns.drill = Asset(name="Drill")
        ns.site = Location(name="Site A", client_id=ns.acme.id)
        ns.yard = Location(name="Yard")
        ns.safety = CertificationGroup(name="Safety")
        ns.quality = CertificationGroup(name="Quality")
        s.add_all([ns.alice, ns.bob, ns.carol, ns.dan, ns.crane, ns.drill, ns.site, ns.yard])
        s.add_all([ns.safety, ns.quality])
        s.flush()
        ns.heights = CertificationGroup(name="Heights", parent_id=ns.safety.id)
        s.add(ns.heights)

        def cert(name: str, kind: str, cost: str | None = None, **kw: Any) -> Certification:
            c = Certification(name=name, type=kind, cost=Decimal(cost) if cost else None, **kw)
            s.add(c)
            return c

        ns.aid = cert("First Aid", "employee", "100.00")
        ns.harness = cert("Harness", "employee", "50.50")
        ns.iso = cert("ISO 9001", "employee")
        ns.old = cert("Old Permit", "employee", archived_at=datetime(2026, 1, 1, tzinfo=UTC))
        ns.inspect = cert("Inspection", "asset", "10.00")
        ns.insurance = cert("Insurance", "client")
        ns.permit = cert("Site Permit", "location")
        s.flush()
        s.add_all(
            [
                CertificationGroupMember(certification_id=ns.aid.id, group_id=ns.safety.id),
                CertificationGroupMember(certification_id=ns.harness.id, group_id=ns.heights.id),
                CertificationGroupMember(certification_id=ns.iso.id, group_id=ns.quality.id),
                CertificationGroupMember(certification_id=ns.old.id, group_id=ns.quality.id),
                CertificationGroupMember(certification_id=ns.inspect.id, group_id=ns.safety.id),
                CertificationGroupMember(certification_id=ns.aid.id, group_id=ns.quality.id),
                CertificationClient(certification_id=ns.harness.id, client_id=ns.acme.id),
            ]
        )

        def assign(c: Certification, subject: Any, status: str, **kw: Any) -> Assignment:
            a = Assignment(
                certification_id=c.id,
                subject_type=c.type,
                subject_id=subject.id,
                status=status,
                **kw,
            )
            s.add(a)
            return a

        d = date
        revoked = {"revoked_at": datetime(2026, 3, 1, tzinfo=UTC), "revoked_reason": "fraud"}
        # Alice: valid (plus an older revoked cycle), expires soon, expired.
        assign(ns.aid, ns.alice, "revoked", issued_on=d(2024, 1, 1), **revoked)
        ns.a_aid = assign(
            ns.aid, ns.alice, "valid", issued_on=d(2026, 1, 1), effective_on=d(2026, 1, 1),
            expires_on=d(2027, 1, 1),
        )  # fmt: skip
        ns.a_harness = assign(
            ns.harness, ns.alice, "expires_soon", issued_on=d(2025, 12, 1),
            effective_on=d(2025, 12, 1), expires_on=d(2026, 12, 10),
        )  # fmt: skip
        ns.a_iso = assign(
            ns.iso, ns.alice, "expired", issued_on=d(2024, 1, 1), effective_on=d(2024, 1, 1),
            expires_on=d(2025, 1, 1),
        )  # fmt: skip
        assign(ns.old, ns.alice, "valid", issued_on=d(2026, 1, 1))  # archived: never shown
        # Bob: missing, upcoming, revoked twice (the latest shows).
        ns.b_aid = assign(ns.aid, ns.bob, "missing", source="role")
        ns.b_harness = assign(
            ns.harness, ns.bob, "upcoming", issued_on=d(2026, 11, 1),
            effective_on=d(2027, 2, 1), expires_on=d(2028, 2, 1),
        )  # fmt: skip
        assign(
            ns.iso, ns.bob, "revoked", issued_on=d(2023, 1, 1),
            revoked_at=datetime(2025, 1, 1, tzinfo=UTC), revoked_reason="old",
        )  # fmt: skip
        ns.b_iso = assign(ns.iso, ns.bob, "revoked", issued_on=d(2025, 2, 1), **revoked)
        # Carol (inactive): an expired record no longer required.
        ns.c_aid = assign(
            ns.aid, ns.carol, "expired", required=False, issued_on=d(2020, 1, 1),
            effective_on=d(2020, 1, 1), expires_on=d(2021, 1, 1),
        )  # fmt: skip
        ns.x_crane = assign(
            ns.inspect, ns.crane, "expires_soon", issued_on=d(2025, 12, 15),
            effective_on=d(2025, 12, 15), expires_on=d(2026, 12, 15),
        )  # fmt: skip
        ns.x_acme = assign(ns.insurance, ns.acme, "missing")
        ns.x_site = assign(
            ns.permit, ns.site, "valid", issued_on=d(2026, 6, 1), effective_on=d(2026, 6, 1)
        )
        s.commit()
    return ns


@pytest.fixture
def world(org, make_org, as_tenant, api_for):
    """This org's directory, and another org's identical one that must never show."""
    ns = build_directory(as_tenant, org)
    ns.other_org = make_org()
    ns.other = build_directory(as_tenant, ns.other_org)
    ns.other_api = api_for(ns.other_org)
    return ns


def entry(a: Assignment, c: Certification) -> dict[str, Any]:
    iso = lambda v: v.isoformat() if v else None  # noqa: E731
    return {
        "certification_id": str(c.id),
        "name": c.name,
        "status": a.status,
        "required": a.required,
        "issued_on": iso(a.issued_on),
        "effective_on": iso(a.effective_on),
        "expires_on": iso(a.expires_on),
        "assignment_id": str(a.id),
        "exempt": False,
    }


def employee(e: Employee, certs: list[dict[str, Any]], summary: dict[str, int]) -> dict:
    return {
        "id": str(e.id),
        "name": e.name,
        "external_id": e.external_id,
        "active": e.active,
        "email": e.email,
        "role_id": str(e.role_id) if e.role_id else None,
        "certifications": certs,
        "summary": summary | {"exempt": 0},
    }


def expected_employees(w: SimpleNamespace, include_inactive: bool = False) -> list[dict[str, Any]]:
    every = [
        employee(
            w.alice,
            [entry(w.a_aid, w.aid), entry(w.a_harness, w.harness), entry(w.a_iso, w.iso)],
            counts(valid=1, expires_soon=1, expired=1),
        ),
        employee(
            w.bob,
            [entry(w.b_aid, w.aid), entry(w.b_harness, w.harness), entry(w.b_iso, w.iso)],
            counts(missing=1, upcoming=1, revoked=1),
        ),
        employee(w.carol, [entry(w.c_aid, w.aid)], counts(expired=1)),
        employee(w.dan, [], counts()),
    ]
    # Carol left (inactive): listed only when asked for.
    return [e for e in every if include_inactive or e["active"]]


def names(resp: Any) -> list[str]:
    assert resp.status_code == 200, resp.get_json()
    return [i["name"] for i in resp.get_json()["items"]]


def test_employees_view_cell_by_cell(api, world):
    resp = api.get("/views/employees")
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["next_cursor"] is None
    assert body["items"] == expected_employees(world)
    # The other org sees its own copy, never ours.
    theirs = world.other_api.get("/views/employees").get_json()["items"]
    assert theirs == expected_employees(world.other)
    every = api.get("/views/employees?include_inactive=true").get_json()["items"]
    assert every == expected_employees(world, include_inactive=True)


def test_assets_clients_locations_views(api, world):
    w = world
    assets = api.get("/views/assets").get_json()["items"]
    assert assets == [
        {
            "id": str(w.crane.id),
            "name": "Crane",
            "external_id": None,
            "active": True,
            "certifications": [entry(w.x_crane, w.inspect)],
            "summary": vcounts(expires_soon=1),
        },
        {
            "id": str(w.drill.id),
            "name": "Drill",
            "external_id": None,
            "active": True,
            "certifications": [],
            "summary": vcounts(),
        },
    ]
    clients = api.get("/views/clients").get_json()["items"]
    assert [(c["name"], c["summary"]) for c in clients] == [
        ("Acme", vcounts(missing=1)),
        ("Globex", vcounts()),
    ]
    assert clients[0]["certifications"] == [entry(w.x_acme, w.insurance)]
    locations = api.get("/views/locations").get_json()["items"]
    assert [(x["name"], x["client_id"], x["summary"]) for x in locations] == [
        ("Site A", str(w.acme.id), vcounts(valid=1)),
        ("Yard", None, vcounts()),
    ]
    assert locations[0]["certifications"] == [entry(w.x_site, w.permit)]


def test_group_tree(api, world):
    w = world
    resp = api.get("/views/groups")
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert [g["name"] for g in body["groups"]] == ["Quality", "Safety"]
    quality, safety = body["groups"]
    assert [c["name"] for c in quality["certifications"]] == ["First Aid", "ISO 9001"]
    aid = quality["certifications"][0]
    # First Aid: Alice valid, Bob missing (Carol left); revoked history hidden.
    assert aid["counts"] == counts(valid=1, missing=1)
    assert (aid["required"], aid["compliant"], aid["compliance"]) == (2, 1, 0.5)
    assert quality["counts"] == counts(valid=1, missing=1, expired=1, revoked=1)
    assert quality["children"] == []
    assert [c["name"] for c in safety["certifications"]] == ["First Aid", "Inspection"]
    assert safety["counts"] == counts(valid=1, missing=1, expires_soon=1)
    assert safety["subtree"]["counts"] == counts(valid=1, missing=1, expires_soon=2, upcoming=1)
    # With the leavers: Carol's expired record (no longer required) counts, the ratio stays.
    every = api.get("/views/groups?include_inactive=true").get_json()
    aid = every["groups"][0]["certifications"][0]
    assert aid["counts"] == counts(valid=1, missing=1, expired=1)
    assert (aid["required"], aid["compliant"], aid["compliance"]) == (2, 1, 0.5)
    [heights] = safety["children"]
    assert heights["name"] == "Heights"
    assert heights["parent_id"] == str(w.safety.id)
    assert heights["certifications"][0]["counts"] == counts(expires_soon=1, upcoming=1)
    assert heights["children"] == []
    assert [c["name"] for c in body["ungrouped"]] == ["Insurance", "Site Permit"]
    assert "Old Permit" not in resp.get_data(as_text=True)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=expired", {"Alice": ["ISO 9001"]}),
        ("status=expired&include_inactive=true", {"Alice": ["ISO 9001"], "Carol": ["First Aid"]}),
        ("status=missing,upcoming", {"Bob": ["First Aid", "Harness"]}),
        ("status=revoked", {"Bob": ["ISO 9001"]}),
        ("q=AL", {"Alice": ["First Aid", "Harness", "ISO 9001"]}),
        ("q=%25", {}),
        ("active=false", {"Carol": ["First Aid"]}),
        ("active=true&q=d", {"Dan": []}),
    ],
)
def test_employee_filters(api, world, query, expected):
    resp = api.get(f"/views/employees?{query}")
    assert resp.status_code == 200, resp.get_json()
    got = {i["name"]: [c["name"] for c in i["certifications"]] for i in resp.get_json()["items"]}
    assert got == expected


def test_status_filter_keeps_the_full_summary(api, world):
    [alice] = api.get("/views/employees?status=expired&q=alice").get_json()["items"]
    assert [c["status"] for c in alice["certifications"]] == ["expired"]
    assert alice["summary"] == vcounts(valid=1, expires_soon=1, expired=1)


def test_id_filters(api, world):
    w = world

    def got(query: str) -> dict[str, list[str]]:
        resp = api.get(f"/views/employees?{query}")
        assert resp.status_code == 200, resp.get_json()
        return {
            i["name"]: [c["name"] for c in i["certifications"]] for i in resp.get_json()["items"]
        }

    assert got(f"certification_id={w.iso.id}") == {"Alice": ["ISO 9001"], "Bob": ["ISO 9001"]}
    # Safety includes its subgroup Heights (recursive).
    assert got(f"group_id={w.safety.id}") == {
        "Alice": ["First Aid", "Harness"],
        "Bob": ["First Aid", "Harness"],
    }
    assert got(f"group_id={w.heights.id}&status=upcoming") == {"Bob": ["Harness"]}
    assert got(f"role_id={w.welder.id}") == {"Alice": ["First Aid", "Harness", "ISO 9001"]}
    assert got(f"role_id={w.welder.id}&include_inactive=true") == {
        "Alice": ["First Aid", "Harness", "ISO 9001"],
        "Carol": ["First Aid"],
    }
    assert got(f"client_id={w.acme.id}") == {"Alice": ["Harness"], "Bob": ["Harness"]}
    [site] = api.get(f"/views/locations?client_id={w.acme.id}").get_json()["items"]
    assert site["name"] == "Site A"
    assert names(api.get(f"/views/clients?client_id={w.globex.id}")) == ["Globex"]
    # Another organization's ids match nothing here.
    assert got(f"certification_id={w.other.iso.id}") == {}
    assert got(f"group_id={w.other.safety.id}") == {}
    assert got(f"role_id={w.other.welder.id}") == {}
    assert got(f"client_id={w.other.acme.id}") == {}
    assert api.get(f"/views/locations?client_id={w.other.acme.id}").get_json()["items"] == []
    assert api.get(f"/views/clients?client_id={w.other.acme.id}").get_json()["items"] == []


def test_pagination_through_all_pages(api, world, as_tenant, org):
    with as_tenant(org.id) as s:
        s.add_all([Employee(name=f"Zed {i:02d}") for i in range(7)] + [Employee(name="Alice")])
        s.commit()
    full = api.get("/views/employees?limit=500&include_inactive=true").get_json()["items"]
    assert len(full) == 12
    alices = [i for i in full if i["name"] == "Alice"]
    assert [a["id"] for a in alices] == sorted(a["id"] for a in alices)  # ties broken by id
    for limit in (1, 3, 5):
        seen, cursor, pages = [], None, 0
        while True:
            path = f"/views/employees?include_inactive=true&limit={limit}" + (
                f"&cursor={cursor}" if cursor else ""
            )
            body = api.get(path).get_json()
            seen += body["items"]
            pages += 1
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert seen == full
        assert pages == -(-12 // limit)
    assert [i["name"] for i in full] == sorted(i["name"] for i in full)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=bogus", "status"),
        ("status=valid,nope", "status"),
        ("certification_id=nope", "certification_id"),
        ("group_id=123", "group_id"),
        ("role_id=x", "role_id"),
        ("client_id=x", "client_id"),
        ("active=maybe", "active"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("format=xml", "format"),
        ("q=", "q"),
        ("q=a%00b", "q"),
        ("cursor=!!!", "cursor"),
    ],
)
def test_bad_filters_are_422(api, world, query, field):
    resp = api.get(f"/views/employees?{query}")
    assert resp.status_code == 422, resp.get_json()
    body = resp.get_json()
    assert field in str(body["errors"]), body


def test_permissions(api_for, org, make_org, world):
    no_scope = api_for(org, scopes=["directory:read"])
    for path in ("/views/groups", "/views/employees", "/views/assets?format=csv"):
        assert no_scope.get(path).status_code == 403
    off = make_org(modules=())
    resp = api_for(off).get("/views/employees")
    assert resp.status_code == 403
    assert resp.get_json()["code"] == "module_disabled"


def data_statement(sql: str) -> bool:
    """Data statements only: not auth's organization lookup nor per-transaction settings."""
    return data_only(sql) and "FROM organizations" not in sql


def test_a_page_costs_a_fixed_number_of_statements(api, world, as_tenant, org, count_queries):
    with as_tenant(org.id) as s:
        people = [Employee(name=f"P{i:03d}") for i in range(60)]
        s.add_all(people)
        s.flush()
        for p in people:
            for c in (world.aid, world.harness, world.iso):
                s.add(
                    Assignment(
                        certification_id=c.id, subject_type="employee", subject_id=p.id,
                        status="valid",
                    )
                )  # fmt: skip
        s.commit()
    costs = {}
    for limit in (2, 50):
        for query in ("", f"&status=valid&group_id={world.safety.id}&q=p"):
            with count_queries(where=data_statement) as q:
                resp = api.get(f"/views/employees?limit={limit}{query}")
            assert resp.status_code == 200
            assert len(resp.get_json()["items"]) == limit
            costs[(limit, query)] = len(q)
    # the subject page, then their assignments, whatever the page size and filters
    assert set(costs.values()) == {2}, costs


def read_csv(resp: Any) -> list[dict[str, str]]:
    assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
    return list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))


def test_csv_cell_by_cell(api, world):
    w = world
    resp = api.get("/views/employees?format=csv")
    assert resp.status_code == 200
    assert resp.is_streamed
    assert resp.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert resp.headers["Content-Disposition"].startswith('attachment; filename="employees-')
    text = resp.get_data(as_text=True)
    header = text.split("\r\n", 1)[0]
    assert header == (
        "subject_type,subject_id,subject_name,subject_external_id,subject_active,"
        "certification_id,certification_name,status,required,issued_on,effective_on,"
        "expires_on,assignment_id,exempt"
    )
    rows = read_csv(resp)

    def line(e: Employee, a: Assignment | None, c: Certification | None) -> dict[str, str]:
        ext = e.external_id or ""
        row = {
            "subject_type": "employee",
            "subject_id": str(e.id),
            "subject_name": e.name,
            "subject_external_id": "'" + ext if ext.startswith("=") else ext,
            "subject_active": "true" if e.active else "false",
        }
        if a is None or c is None:
            return row | dict.fromkeys(
                ["certification_id", "certification_name", "status", "required", "issued_on",
                 "effective_on", "expires_on", "assignment_id", "exempt"], "",
            )  # fmt: skip
        iso = lambda v: v.isoformat() if v else ""  # noqa: E731
        return row | {
            "certification_id": str(c.id),
            "certification_name": c.name,
            "status": a.status,
            "required": "true" if a.required else "false",
            "issued_on": iso(a.issued_on),
            "effective_on": iso(a.effective_on),
            "expires_on": iso(a.expires_on),
            "assignment_id": str(a.id),
            "exempt": "false",
        }

    assert rows == [
        line(w.alice, w.a_aid, w.aid),
        line(w.alice, w.a_harness, w.harness),
        line(w.alice, w.a_iso, w.iso),
        line(w.bob, w.b_aid, w.aid),
        line(w.bob, w.b_harness, w.harness),
        line(w.bob, w.b_iso, w.iso),
        line(w.dan, None, None),
    ]
    every = read_csv(api.get("/views/employees?format=csv&include_inactive=true"))
    assert every[6] == line(w.carol, w.c_aid, w.aid)
    assert every[6]["subject_external_id"] == "'=1+2"  # no formula runs in a spreadsheet


def test_csv_filters_and_chunks(api, world, monkeypatch):
    from certifications.reporting import export

    monkeypatch.setattr(export, "ROWS_PER_PAGE", 1)
    rows = read_csv(api.get("/views/employees?format=csv&status=expired,missing"))
    assert [(r["subject_name"], r["certification_name"], r["status"]) for r in rows] == [
        ("Alice", "ISO 9001", "expired"),
        ("Bob", "First Aid", "missing"),
    ]
    assets = read_csv(api.get("/views/assets?format=csv"))
    assert [(r["subject_name"], r["certification_name"]) for r in assets] == [
        ("Crane", "Inspection"),
        ("Drill", ""),
    ]
    assert {r["subject_type"] for r in assets} == {"asset"}
    for kind in ("clients", "locations"):
        body = api.get(f"/views/{kind}?format=csv").get_data(as_text=True)
        assert str(world.other.acme.id) not in body
        assert str(world.other.site.id) not in body


def test_csv_is_utf8(api, as_tenant, org):
    with as_tenant(org.id) as s:
        s.add(Employee(name='Zoë Ørsted, "Jr"'))
        s.commit()
    resp = api.get("/views/employees?format=csv")
    assert resp.get_data().decode("utf-8").count("Zoë") == 1
    [row] = read_csv(resp)
    assert row["subject_name"] == 'Zoë Ørsted, "Jr"'


def test_group_tree_and_summary_cost_fixed_statements(api, world, as_tenant, org, count_queries):
    def cost(path: str) -> int:
        with count_queries(where=data_statement) as q:
            assert api.get(path).status_code == 200
        return len(q)

    before = {p: cost(p) for p in ("/views/groups", "/compliance/summary")}
    with as_tenant(org.id) as s:
        parent = world.heights.id
        for i in range(15):  # a deeper tree, more certifications and members
            g = CertificationGroup(name=f"Level {i}", parent_id=parent)
            c = Certification(name=f"Extra {i}", type="asset")
            s.add_all([g, c])
            s.flush()
            s.add(CertificationGroupMember(certification_id=c.id, group_id=g.id))
            parent = g.id
        s.commit()
    after = {p: cost(p) for p in before}
    assert after == before == {"/views/groups": 2, "/compliance/summary": 2}
