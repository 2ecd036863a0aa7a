"""Directory list pages are written from columns with orjson (`api.resources.directory.ListPage`):
each kind's page must stay what its documented item schema dumps for the same rows."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from api.schemas.directory import SCHEMAS
from certifications.directory.service import KINDS

PLURALS = sorted(KINDS)


def _arrange(api) -> None:
    """Rows with every optional field set and unset: roles, several roles, managers, non-ASCII."""
    welder = api.post("/roles", json={"name": "Welder", "external_id": "R-1"}).get_json()
    rigger = api.post("/roles", json={"name": "Rigger"}).get_json()
    boss = api.post(
        "/employees",
        json={"name": "Zoë Ångström", "email": "zoe@example.com", "role_ids": [rigger["id"]]},
    ).get_json()
    api.post(
        "/employees",
        json={
            "name": "Ann Smith",
            "external_id": "E-1",
            "role_ids": [welder["id"], rigger["id"]],
            "manager_id": boss["id"],
            "user_sub": "auth0|ann",
        },
    )
    api.post("/employees", json={"name": "Bob"})  # no role at all
    client = api.post("/clients", json={"name": "Northwind", "contact_email": "o@n.example"})
    api.post(
        "/locations",
        json={"name": "Pier 4", "client_id": client.get_json()["id"], "manager_ids": [boss["id"]]},
    )
    api.post("/locations", json={"name": "Depot"})
    api.post("/assets", json={"name": "Crane 7", "serial_number": "SN-7", "category": "Crane"})
    api.post("/assets", json={"name": "Hoist"})


@pytest.mark.parametrize("plural", PLURALS)
def test_each_page_is_its_schema_dump_of_the_same_rows(plural, api, org, as_tenant):
    _arrange(api)
    kind = KINDS[plural]
    pages = []
    cursor = None
    while True:  # pages of 2: the cursor is written from the columns too
        resp = api.get(f"/{plural}?limit=2" + (f"&cursor={cursor}" if cursor else ""))
        assert resp.status_code == 200, resp.get_data(as_text=True)
        assert resp.mimetype == "application/json"
        body = resp.get_json()
        pages.append(body)
        cursor = body["next_cursor"]
        if cursor is None:
            break
    listed = [item for page in pages for item in page["items"]]
    assert listed, plural
    schema = SCHEMAS[plural]["out"]()
    with as_tenant(org.id) as s:
        rows = s.scalars(select(kind.model).order_by(kind.model.name, kind.model.id)).all()
        expected = json.loads(json.dumps(schema.dump(rows, many=True)))
    assert listed == expected
    for item in listed:
        assert list(item) == sorted(schema.fields)  # every documented field, sorted keys


def test_a_filtered_sorted_page_keeps_its_order_and_cursor(api):
    _arrange(api)
    first = api.get("/employees?limit=1&sort=-name").get_json()
    assert [i["name"] for i in first["items"]] == ["Zoë Ångström"]
    rest = api.get(f"/employees?limit=5&sort=-name&cursor={first['next_cursor']}").get_json()
    assert [i["name"] for i in rest["items"]] == ["Bob", "Ann Smith"]
    assert rest["next_cursor"] is None
    ann = rest["items"][1]
    assert len(ann["role_ids"]) == 2
    assert ann["role_id"] == ann["role_ids"][0]
    assert ann["job_id"] is None


@pytest.mark.postgres
def test_a_page_read_on_the_driver_is_the_page_read_through_sqlalchemy(api, org, runtime):
    """With the organization kept by auth, a list page opens no session: its two statements
    (the page, the employees' roles) run on the driver's cursor (`tenancy.driver_reads`), each
    a transaction of one round trip. Every filter shape answers as through SQLAlchemy."""
    from sqlalchemy import event

    from tenancy import driver_reads

    _arrange(api)
    welder = next(r for r in api.get("/roles").get_json()["items"] if r["name"] == "Welder")
    paths = [
        "/employees?limit=2",
        "/employees?q=an&active=true",
        f"/employees?role_id={welder['id']}",
        "/employees?external_id=E-1",
        "/employees?updated_since=2020-01-01T00:00:00Z&sort=-name",
        "/assets?category=crane",
        "/locations?limit=1",
    ]
    first = api.get("/employees?limit=2").get_json()
    paths.append(f"/employees?limit=2&cursor={first['next_cursor']}")
    executed: list[str] = []
    note = lambda _conn, _cursor, statement, *_rest: executed.append(statement)  # noqa: E731
    event.listen(runtime.engine, "after_cursor_execute", note)
    try:
        direct = {path: api.get(path) for path in paths}
        on_driver = list(executed)
        driver_reads.enabled = False
        through = {path: api.get(path) for path in paths}
    finally:
        driver_reads.enabled = True
        event.remove(runtime.engine, "after_cursor_execute", note)
    for path in paths:
        assert direct[path].status_code == 200, direct[path].get_data(as_text=True)
        assert direct[path].get_data() == through[path].get_data(), path
    assert any(direct[p].get_json()["items"] for p in paths)
    assert on_driver == [], on_driver  # nothing went through SQLAlchemy's execution
