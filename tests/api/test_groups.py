"""Certification groups: create, rename, move, delete, flat list and tree (SPEC §4, §9)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import insert

from certifications.catalog import groups as groups_service
from certifications.catalog.models import CertificationGroup


def _group(client, name="Safety", parent_id=None):
    body = {"name": name} if parent_id is None else {"name": name, "parent_id": parent_id}
    resp = client.post("/certification-groups", json=body)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()["id"]


def _cert(client, name="OSHA 10", **extra):
    resp = client.post("/certifications", json={"name": name, "type": "employee", **extra})
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()["id"]


def _fields(resp):
    """The field errors of a 422, whether from the schema (under "json") or the service."""
    errors = resp.get_json()["errors"]
    return {**errors.get("json", {}), **{k: v for k, v in errors.items() if k != "json"}}


def _chain(client, depth):
    ids = [_group(client, "level 0")]
    for level in range(1, depth):
        ids.append(_group(client, f"level {level}", ids[-1]))
    return ids


def _parent_of(client, group_id):
    return client.get(f"/certification-groups/{group_id}").get_json()["parent_id"]


def test_create_nested_and_get_with_contents(api):
    safety = _group(api, "Safety")
    cranes = _group(api, "Cranes", safety)
    cert = _cert(api, group_ids=[safety])
    archived = _cert(api, "Retired one", group_ids=[safety])
    assert api.post(f"/certifications/{archived}/archive").status_code == 200

    body = api.get(f"/certification-groups/{safety}").get_json()
    assert body["name"] == "Safety"
    assert body["parent_id"] is None
    assert body["subgroups"] == [{"id": cranes, "name": "Cranes"}]
    assert [(c["id"], c["archived"]) for c in body["certifications"]] == [
        (cert, False),
        (archived, True),
    ]
    assert body["certification_count"] == 1
    assert api.get(f"/certification-groups/{cranes}").get_json()["parent_id"] == safety


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "a\x00b"}, "name"),
        ({"name": "ok", "parent_id": "nope"}, "parent_id"),
        ({"name": "ok", "parent_id": str(uuid.uuid4())}, "parent_id"),
        ({"name": "ok", "org_id": str(uuid.uuid4())}, "org_id"),
    ],
)
def test_create_refuses_bad_input(api, body, field):
    resp = api.post("/certification-groups", json=body)
    assert resp.status_code == 422, resp.get_json()
    assert field in _fields(resp)


def test_foreign_parent_is_refused_like_an_unknown_one(api, api_for, make_org):
    foreign = _group(api_for(make_org()), "Theirs")
    resp = api.post("/certification-groups", json={"name": "Mine", "parent_id": foreign})
    unknown = api.post(
        "/certification-groups", json={"name": "Mine", "parent_id": str(uuid.uuid4())}
    )
    assert resp.status_code == unknown.status_code == 422
    assert list(_fields(resp)) == ["parent_id"]
    moved = api.post(f"/certification-groups/{_group(api)}/move", json={"parent_id": foreign})
    assert moved.status_code == 422
    assert "parent_id" in _fields(moved)


def test_rename(api):
    gid = _group(api, "Safty")
    resp = api.patch(f"/certification-groups/{gid}", json={"name": "Safety"})
    assert resp.status_code == 200
    assert resp.get_json()["name"] == "Safety"
    assert api.get(f"/certification-groups/{gid}").get_json()["name"] == "Safety"
    assert api.patch(f"/certification-groups/{gid}", json={"name": ""}).status_code == 422
    # Re-parenting is /move's job, so PATCH refuses parent_id rather than ignoring it.
    resp = api.patch(f"/certification-groups/{gid}", json={"name": "x", "parent_id": None})
    assert resp.status_code == 422
    assert "parent_id" in _fields(resp)


def test_flat_list_pages_by_name_with_parent_ids(api):
    root = _group(api, "B root")
    child = _group(api, "A child", root)
    _group(api, "C other")
    first = api.get("/certification-groups?limit=2").get_json()
    assert [(g["name"], g["parent_id"]) for g in first["items"]] == [
        ("A child", root),
        ("B root", None),
    ]
    assert first["items"][0]["id"] == child
    rest = api.get(f"/certification-groups?limit=2&cursor={first['next_cursor']}").get_json()
    assert [g["name"] for g in rest["items"]] == ["C other"]
    assert rest["next_cursor"] is None
    assert api.get("/certification-groups?view=forest").status_code == 422


def test_tree_nests_children_by_name_with_counts(api):
    safety = _group(api, "Safety")
    equipment = _group(api, "Equipment")
    cranes = _group(api, "Cranes", equipment)
    _group(api, "Aerial", equipment)
    _group(api, "Mobile", cranes)
    _cert(api, "A", group_ids=[cranes])
    _cert(api, "B", group_ids=[cranes, safety])

    items = api.get("/certification-groups?view=tree").get_json()["items"]

    def shape(nodes):
        return [(n["name"], n["certification_count"], shape(n["children"])) for n in nodes]

    assert shape(items) == [
        ("Equipment", 0, [("Aerial", 0, []), ("Cranes", 2, [("Mobile", 0, [])])]),
        ("Safety", 1, []),
    ]
    assert items[0]["children"][1]["parent_id"] == equipment


def test_tree_of_1200_groups_is_one_query(api, org, as_tenant, count_queries):
    """A wide and deep tree: built from one SELECT, not one per node."""
    rows, parents = [], [None]
    for i in range(1200):
        gid = uuid.uuid4()
        parent = parents[i // 3]  # a ternary tree, about 7 levels deep
        rows.append({"org_id": org.id, "id": gid, "name": f"g{i:04d}", "parent_id": parent})
        parents.append(gid)
    with as_tenant(org.id) as s:
        s.execute(insert(CertificationGroup), rows)
        s.commit()

    with count_queries(where=lambda sql: "certification_groups" in sql) as q:
        resp = api.get("/certification-groups?view=tree")
    assert resp.status_code == 200
    assert q.verbs.count("SELECT") == 1, q

    def total(nodes):
        return sum(1 + total(n["children"]) for n in nodes)

    items = resp.get_json()["items"]
    assert total(items) == 1200
    assert [n["name"] for n in items] == ["g0000", "g0001", "g0002"]


def test_move_to_another_parent_and_back_to_root(api):
    safety = _group(api, "Safety")
    equipment = _group(api, "Equipment")
    cranes = _group(api, "Cranes", safety)
    mobile = _group(api, "Mobile", cranes)
    cert = _cert(api, group_ids=[cranes])

    resp = api.post(f"/certification-groups/{cranes}/move", json={"parent_id": equipment})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["parent_id"] == equipment
    # The subgroups and certifications travel with it.
    listed = api.get(f"/certifications?group_id={equipment}&recursive=true").get_json()["items"]
    assert [c["id"] for c in listed] == [cert]
    assert _parent_of(api, mobile) == cranes
    assert api.get(f"/certification-groups/{safety}").get_json()["subgroups"] == []

    resp = api.post(f"/certification-groups/{cranes}/move", json={"parent_id": None})
    assert resp.status_code == 200
    assert _parent_of(api, cranes) is None


@pytest.mark.parametrize("body", [{}, {"parent_id": "x"}, {"parent": None}])
def test_move_needs_a_parent_id(api, body):
    resp = api.post(f"/certification-groups/{_group(api)}/move", json=body)
    assert resp.status_code == 422
    assert resp.get_json()["errors"]


def test_move_into_itself_is_409(api):
    gid = _group(api)
    resp = api.post(f"/certification-groups/{gid}/move", json={"parent_id": gid})
    assert resp.status_code == 409
    assert "parent_id" in _fields(resp)


def test_deep_move_into_own_subtree_is_409_and_changes_nothing(api):
    chain = _chain(api, 40)
    for target in (chain[1], chain[20], chain[-1]):
        resp = api.post(f"/certification-groups/{chain[0]}/move", json={"parent_id": target})
        assert resp.status_code == 409, resp.get_json()
        assert "own subgroups" in resp.get_json()["message"]
    resp = api.post(f"/certification-groups/{chain[10]}/move", json={"parent_id": chain[39]})
    assert resp.status_code == 409
    assert _parent_of(api, chain[0]) is None
    assert _parent_of(api, chain[10]) == chain[9]

    # Moving a deep leaf to the top and then the old top under it is fine (no cycle).
    assert (
        api.post(f"/certification-groups/{chain[-1]}/move", json={"parent_id": None}).status_code
        == 200
    )
    resp = api.post(f"/certification-groups/{chain[0]}/move", json={"parent_id": chain[-1]})
    assert resp.status_code == 200
    tree = api.get("/certification-groups?view=tree").get_json()["items"]
    assert len(tree) == 1
    assert tree[0]["id"] == chain[-1]


def test_delete_empty_group(api):
    gid = _group(api)
    assert api.delete(f"/certification-groups/{gid}").status_code == 204
    assert api.get(f"/certification-groups/{gid}").status_code == 404
    assert api.delete(f"/certification-groups/{gid}").status_code == 404


def test_delete_refuses_a_group_holding_things_and_names_them(api):
    gid = _group(api, "Safety")
    sub = _group(api, "Cranes", gid)
    cert = _cert(api, group_ids=[gid])

    resp = api.delete(f"/certification-groups/{gid}")
    assert resp.status_code == 409
    body = resp.get_json()
    assert "1 certification and 1 subgroup" in body["message"]
    assert body["errors"] == {"certifications": [cert], "subgroups": [sub]}

    assert api.patch(f"/certifications/{cert}", json={"group_ids": []}).status_code == 200
    resp = api.delete(f"/certification-groups/{gid}")
    assert resp.status_code == 409
    assert resp.get_json()["errors"] == {"subgroups": [sub]}
    assert api.delete(f"/certification-groups/{sub}").status_code == 204
    assert api.delete(f"/certification-groups/{gid}").status_code == 204


def test_foreign_group_is_404_on_every_id_route(api, api_for, make_org):
    theirs = api_for(make_org())
    gid = _group(theirs, "Theirs")
    before = theirs.get(f"/certification-groups/{gid}").get_json()
    mine = _group(api, "Mine")
    calls = [
        api.get(f"/certification-groups/{gid}"),
        api.patch(f"/certification-groups/{gid}", json={"name": "Hijacked"}),
        api.post(f"/certification-groups/{gid}/move", json={"parent_id": mine}),
        api.post(f"/certification-groups/{gid}/move", json={"parent_id": None}),
        api.delete(f"/certification-groups/{gid}"),
    ]
    for resp in calls:
        assert resp.status_code == 404, resp.get_json()
        assert resp.get_json()["code"] == 404
    assert theirs.get(f"/certification-groups/{gid}").get_json() == before
    assert gid not in str(api.get("/certification-groups?view=tree").get_json())
    assert gid not in str(api.get("/certification-groups").get_json())


@pytest.mark.parametrize(
    ("method", "path", "body", "scope"),
    [
        ("get", "/certification-groups", None, "certifications:read"),
        ("get", "/certification-groups/{id}", None, "certifications:read"),
        ("post", "/certification-groups", {"name": "New"}, "certifications:create"),
        ("patch", "/certification-groups/{id}", {"name": "New"}, "certifications:update"),
        ("post", "/certification-groups/{id}/move", {"parent_id": None}, "certifications:update"),
        ("delete", "/certification-groups/{id}", None, "certifications:delete"),
    ],
)
def test_scopes_per_operation(api, api_for, org, method, path, body, scope):
    gid = _group(api)
    url = path.format(id=gid)
    kw = {"json": body} if body is not None else {}
    others = [
        s
        for s in (
            "certifications:read",
            "certifications:create",
            "certifications:update",
            "certifications:delete",
        )
        if s != scope
    ]
    denied = getattr(api_for(org, scopes=others), method)(url, **kw)
    assert denied.status_code == 403
    assert scope in denied.get_json()["message"]
    allowed = getattr(api_for(org, scopes=[scope]), method)(url, **kw)
    assert allowed.status_code < 300, allowed.get_json()


def test_module_disabled_is_403(api_for, make_org):
    client = api_for(make_org(modules=()))
    for resp in (
        client.get("/certification-groups"),
        client.post("/certification-groups", json={"name": "x"}),
        client.get(f"/certification-groups/{uuid.uuid4()}"),
    ):
        assert resp.status_code == 403
        assert resp.get_json()["code"] == "module_disabled"


def test_nesting_depth_is_bounded(api, monkeypatch):
    monkeypatch.setattr(groups_service, "MAX_DEPTH", 4)
    chain = _chain(api, 4)
    resp = api.post("/certification-groups", json={"name": "too deep", "parent_id": chain[-1]})
    assert resp.status_code == 422
    assert "at most 4 levels" in _fields(resp)["parent_id"][0]
    # A two-level subtree fits under level 2 (reaching level 4), not under level 3.
    top = _group(api, "top")
    _group(api, "child", top)
    resp = api.post(f"/certification-groups/{top}/move", json={"parent_id": chain[2]})
    assert resp.status_code == 422
    assert "parent_id" in _fields(resp)
    assert _parent_of(api, top) is None
    resp = api.post(f"/certification-groups/{top}/move", json={"parent_id": chain[1]})
    assert resp.status_code == 200


def test_sibling_group_names_are_unique_ignoring_case(api):
    safety = _group(api, "Safety")
    # two roots
    resp = api.post("/certification-groups", json={"name": "SAFETY"})
    assert resp.status_code == 409
    assert "name" in resp.get_json()["errors"]
    # two children of one parent
    _group(api, "Cranes", safety)
    resp = api.post("/certification-groups", json={"name": "cranes", "parent_id": safety})
    assert resp.status_code == 409
    assert "name" in resp.get_json()["errors"]
    # the same name under another parent, or at another level, is fine
    other = _group(api, "Electrical")
    _group(api, "Cranes", other)
    _group(api, "Cranes")
    # renaming into a sibling's name, or moving next to a namesake, is refused
    lifts = _group(api, "Lifts", safety)
    resp = api.patch(f"/certification-groups/{lifts}", json={"name": "CRANES"})
    assert resp.status_code == 409
    assert "name" in resp.get_json()["errors"]
    assert api.patch(f"/certification-groups/{lifts}", json={"name": "LIFTS"}).status_code == 200
    loose = _group(api, "cranes", lifts)
    resp = api.post(f"/certification-groups/{loose}/move", json={"parent_id": safety})
    assert resp.status_code == 409
    assert "name" in resp.get_json()["errors"]


def test_group_name_indexes_ignore_case_in_the_database(org, as_tenant):
    from sqlalchemy.exc import IntegrityError

    for parent in (False, True):
        with as_tenant(org.id) as s:
            parent_id = None
            if parent:
                top = CertificationGroup(org_id=org.id, name="Top")
                s.add(top)
                s.flush()
                parent_id = top.id
            s.add(CertificationGroup(org_id=org.id, name="Safety", parent_id=parent_id))
            s.flush()
            s.add(CertificationGroup(org_id=org.id, name="safety", parent_id=parent_id))
            with pytest.raises(IntegrityError):
                s.flush()
