"""`?sort=` on lists: documented fields, `-` for descending, keyset pages that stay in order."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from certifications.assignments.models import Assignment
from certifications.catalog.models import Certification
from certifications.directory.models import Role


def _names(api, path, **query):
    """Every name of the list, page by page (3 a page), following next_cursor."""
    names, cursor = [], None
    while True:
        params = {"limit": 3, **query, **({"cursor": cursor} if cursor else {})}
        resp = api.get(path, query_string=params)
        assert resp.status_code == 200, resp.get_json()
        page = resp.get_json()
        names += [item["name"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return names


def _stamp(as_tenant, org, model, when_by_name):
    with as_tenant(org.id) as s:
        for name, day in when_by_name.items():
            s.execute(
                update(model)
                .where(model.name == name)
                .values(updated_at=datetime(2026, 1, day, tzinfo=UTC))
                .execution_options(synchronize_session=False)
            )
        s.commit()


def test_directory_lists_sort_by_documented_fields_across_pages(api, as_tenant, org):
    names = ["delta", "alpha", "echo", "charlie", "bravo", "foxtrot", "golf"]
    for name in names:
        assert api.post("/roles", json={"name": name}).status_code == 201
    # updated_at: two share a day, so the id breaks the tie inside a descending sort.
    days = {"delta": 5, "alpha": 2, "echo": 7, "charlie": 5, "bravo": 1, "foxtrot": 3, "golf": 4}
    _stamp(as_tenant, org, Role, days)

    assert _names(api, "/roles") == sorted(names)
    assert _names(api, "/roles", sort="-name") == sorted(names, reverse=True)
    newest = _names(api, "/roles", sort="-updated_at")
    assert [days[n] for n in newest] == sorted(days.values(), reverse=True)
    assert sorted(newest) == sorted(names)  # nothing lost or repeated across pages
    assert _names(api, "/roles", sort="-updated_at,name")[1:3] == ["charlie", "delta"]
    assert _names(api, "/roles", sort="updated_at")[0] == "bravo"


def test_certifications_sort_and_filter_by_updated_since(api, as_tenant, org):
    for name in ("Harness", "Crane", "First aid", "Welding"):
        body = {"name": name, "type": "employee"}
        assert api.post("/certifications", json=body).status_code == 201
    days = {"Harness": 3, "Crane": 9, "First aid": 1, "Welding": 6}
    _stamp(as_tenant, org, Certification, days)
    assert _names(api, "/certifications", sort="-updated_at") == [
        "Crane",
        "Welding",
        "Harness",
        "First aid",
    ]
    since = {"updated_since": "2026-01-05T00:00:00+00:00"}
    assert sorted(_names(api, "/certifications", **since)) == ["Crane", "Welding"]


@pytest.mark.parametrize(
    "sort",
    ["email", "name,name", "-", "name,created_at,updated_at,name", "name;drop", "updated_at,"],
    ids=["unknown", "twice", "bare-dash", "four", "junk", "trailing-comma"],
)
def test_an_invalid_sort_is_422_naming_sort(api, sort):
    resp = api.get("/employees", query_string={"sort": sort})
    assert resp.status_code == 422
    assert "sort" in resp.get_json()["errors"]["query"]


def test_sort_given_twice_is_422_not_the_first_value(api):
    resp = api.get("/roles?sort=name&sort=-name")
    assert resp.status_code == 422
    assert "sort" in resp.get_json()["errors"]["query"]


def test_the_document_lists_the_sortable_fields(app):
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    for path in ("/api/v1/employees", "/api/v1/certifications"):
        params = {p["name"]: p for p in doc["paths"][path]["get"]["parameters"] if "name" in p}
        assert "updated_at" in params["sort"]["description"], path
        assert "updated_since" in params


def test_record_lists_filter_by_updated_since(api, as_tenant, org, make_employee):
    """Assignments, tasks and notifications take `updated_since` too (a sync of the records
    themselves, not only of the directory)."""
    cert = api.post("/certifications", json={"name": "Crane", "type": "employee"}).get_json()
    made = []
    for name in ("Ada", "Bob", "Cy"):
        emp = make_employee(org, name=name)
        body = {
            "certification_id": cert["id"],
            "subject_type": "employee",
            "subject_id": str(emp.id),
        }
        resp = api.post("/assignments", json=body)
        assert resp.status_code == 201, resp.get_json()
        made.append(resp.get_json()["id"])
    with as_tenant(org.id) as s:
        for day, assignment_id in zip((2, 9, 20), made, strict=True):
            s.execute(
                update(Assignment)
                .where(Assignment.id == uuid.UUID(assignment_id))
                .values(updated_at=datetime(2026, 1, day, tzinfo=UTC))
                .execution_options(synchronize_session=False)
            )
        s.commit()
    since = {"updated_since": "2026-01-09T00:00:00+01:00"}  # 8 Jan 23:00 UTC
    got = api.get("/assignments", query_string=since).get_json()["items"]
    assert sorted(a["id"] for a in got) == sorted(made[1:])
    for path in ("/tasks", "/notifications"):
        resp = api.get(path, query_string={"updated_since": "2999-01-01T00:00:00Z"})
        assert resp.status_code == 200, (path, resp.get_json())
        assert resp.get_json()["items"] == []
    naive = api.get("/assignments", query_string={"updated_since": "2026-01-09T00:00:00"})
    assert naive.status_code == 422
    assert "updated_since" in naive.get_json()["errors"]["query"]
