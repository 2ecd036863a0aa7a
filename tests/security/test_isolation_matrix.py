"""Tenant isolation, route by route: a foreign org's id is a 404 and its rows never change or leak.

Every operation of the OpenAPI document is enumerated at collection time, so an endpoint added
later is covered without editing this file (or fails, saying which factory/sample to add to
`tests/security/support.py`). Each test runs twice on PostgreSQL: with the ORM tenant filter, and
with it switched off (row-level security alone, as the non-owner app role).
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest

from tenancy import scoping as tenancy_session
from tests.security import support
from tests.security.support import Operation
from tests.support.factories import WORLD_KINDS

OPS = support.operations()
ID_OPS = [op for op in OPS if op.uuid_params]
LIST_OPS = [op for op in OPS if op.method == "get" and not op.path_params]
REF_OPS = [
    op for op in OPS if op.method in support.WRITE_METHODS and list(support.body_uuid_fields(op))
]


@pytest.fixture(
    params=[
        pytest.param(False, id="orm+rls"),
        pytest.param(True, id="rls-only", marks=pytest.mark.postgres),
    ]
)
def walls(request, monkeypatch):
    """`rls-only` switches the ORM tenant filter off: PostgreSQL RLS must hold on its own."""
    if request.param:
        monkeypatch.setattr(tenancy_session, "ORM_FILTER_ENABLED", False)
    return request.param


@pytest.fixture
def tenants(make_org, make_world):
    """Org A (the caller) and org B (the victim), each with one row of every kind."""
    a, b = make_org(name="Org A"), make_org(name="Org B")
    return a, make_world(a), b, make_world(b)


def _call(client: Any, op: Operation, path: str, body: Any, query: dict[str, Any]) -> Any:
    kw: dict[str, Any] = {"query_string": query}
    if body is not None:
        kw["json"] = body
    return getattr(client, op.method)(path, **kw)


def test_inventory_matches_url_map(app):
    """The document lists every /api/v1 route of the URL map, so nothing escapes the matrices."""
    documented = {(op.method.upper(), op.path) for op in OPS}
    for method, rule in support.route_inventory(app):
        path = rule
        for conv in ("uuid:", "string:", "int:", "path:"):
            path = path.replace("<" + conv, "{")
        path = path.replace("<", "{").replace(">", "}")
        assert (method, path) in documented, f"{method} {rule} is not in the OpenAPI document"


def test_every_id_kind_has_a_factory() -> None:
    missing = sorted(
        {
            f"{op.id}: {{{p}}} -> kind {support.kind_for_route(op, p)!r}"
            for op in ID_OPS
            for p in op.uuid_params
            if support.kind_for_route(op, p) not in WORLD_KINDS
        }
    )
    assert not missing, (
        "id routes whose resource kind has no factory; add one to WORLD_KINDS in "
        f"tests/support/factories.py (and SEGMENT_KINDS in tests/security/support.py): {missing}"
    )


@pytest.mark.parametrize("op", ID_OPS, ids=lambda op: op.id)
def test_foreign_id_is_404_and_changes_nothing(op, walls, tenants, api_for):
    a, world_a, b, world_b = tenants
    for p in op.uuid_params:
        kind = support.kind_for_route(op, p)
        assert kind in WORLD_KINDS, (
            f"{op.id}: no factory for kind {kind!r} of {{{p}}}; add one to WORLD_KINDS in "
            "tests/support/factories.py"
        )
    # /me routes answer a worker's own token (the world's employee signs in as itself).
    client = api_for(a, scopes=["self"], sub=str(world_a["employee"])) if op.is_self else api_for(a)
    body = support.sample_body(op, world_a)
    query = support.required_query(op, world_a)
    foreign_ids = {p: world_b[support.kind_for_route(op, p)] for p in op.uuid_params}
    before_b = support.snapshot(b.id)

    resp = _call(client, op, support.build_path(op, world_b, foreign_ids), body, query)
    assert resp.status_code == 404, (
        f"{op.id} with org B's id as org A: {resp.status_code} {resp.get_data(as_text=True)[:300]}"
    )
    assert resp.get_json()["code"] == 404
    # Indistinguishable from an id that exists nowhere (same status, same message).
    nowhere = {p: uuid.uuid4() for p in foreign_ids}
    missing = _call(client, op, support.build_path(op, world_a, nowhere), body, query)
    assert missing.status_code == 404

    def _masked(r: Any, ids: dict[str, uuid.UUID]) -> str:
        msg = r.get_json()["message"]
        for v in ids.values():
            msg = msg.replace(str(v), "<id>")
        return msg

    assert _masked(resp, foreign_ids) == _masked(missing, nowhere)
    assert support.snapshot(b.id) == before_b, f"{op.id} changed org B's rows"

    # Control: the same call on org A's own row reaches the view (body and route are valid),
    # so the 404 above came from tenancy, not from a malformed request.
    own = _call(client, op, support.build_path(op, world_a), body, query)
    assert own.status_code not in (404, 422), (
        f"{op.id} on org A's own row: {own.status_code} {own.get_data(as_text=True)[:300]} — "
        "fix the sample body in tests/security/support.py SAMPLES"
    )
    assert own.status_code < 500
    assert support.snapshot(b.id) == before_b


@pytest.mark.parametrize("op", REF_OPS, ids=lambda op: op.id)
def test_foreign_reference_in_body_is_refused(op, walls, tenants, api_for):
    """A body naming another org's row (role_id, certification_id, subject_id, ...) is refused
    exactly like an id that exists nowhere, and nothing is written."""
    a, world_a, b, world_b = tenants
    client = api_for(a)
    query = support.required_query(op, world_a)
    path = support.build_path(op, world_a)
    before_a, before_b = support.snapshot(a.id), support.snapshot(b.id)
    tried = 0
    for name, is_list in support.body_uuid_fields(op):
        kinds = (
            ["employee", "asset", "client", "location"]
            if name in ("subject_id", "subject_ids")
            else [support.FIELD_KINDS[name]]
        )
        for kind in kinds:
            if kind not in world_b:
                continue
            results = []
            for value in (world_b[kind], uuid.uuid4()):
                body = support.sample_body(op, world_a) or {}
                if name in ("subject_id", "subject_ids") and "subject_type" in body:
                    body["subject_type"] = kind
                body[name] = [str(value)] if is_list else str(value)
                resp = _call(client, op, path, body, query)
                results.append(resp)
            foreign, nowhere = results
            if foreign.status_code == 200 and "rows" in (foreign.get_json() or {}):
                # A bulk request reports each refused row (as the directory bulk import does):
                # the foreign id is refused like an unknown one, and nothing is written.
                assert _row_refusals(foreign) == _row_refusals(nowhere), op.id
                assert {r["status"] for r in foreign.get_json()["rows"]} == {"error"}, op.id
                tried += 1
                continue
            assert 400 <= foreign.status_code < 500, (
                f"{op.id} accepted org B's {kind} in {name}: {foreign.status_code} "
                f"{foreign.get_data(as_text=True)[:300]}"
            )
            assert foreign.status_code == nowhere.status_code, (
                f"{op.id} {name}: foreign id {foreign.status_code} vs unknown id "
                f"{nowhere.status_code} — an existence leak"
            )
            tried += 1
    assert tried
    assert support.snapshot(b.id) == before_b
    assert support.snapshot(a.id) == before_a, f"{op.id} wrote something despite refusing"


def _row_refusals(resp: Any) -> list[tuple[Any, ...]]:
    """(index, status, message without ids) of each row of a bulk report."""
    return [
        (r["index"], r["status"], r.get("message", "").split(" ")[0])
        for r in resp.get_json()["rows"]
    ]


def _filter_combos(op: Operation, world_a: dict, world_b: dict) -> list[dict[str, Any]]:
    """None, each filter alone (own id, foreign id, each enum value), and pairs of own ids."""
    combos: list[dict[str, Any]] = [{}]
    singles: list[dict[str, Any]] = []
    for p in op.query_params:
        name = p["name"]
        if name in ("cursor",):
            continue
        schema = support.resolve(op.doc, p.get("schema"))
        kind = support.FIELD_KINDS.get(name)
        if kind and kind in world_a:
            singles += [{name: str(world_a[kind])}, {name: str(world_b[kind])}]
            if name == "subject_id":
                singles += [{name: str(world_b[k])} for k in ("asset", "client", "location")]
        elif "enum" in schema:
            singles += [{name: v} for v in schema["enum"] if v is not None]
        elif schema.get("type") == "boolean":
            singles += [{name: "true"}, {name: "false"}]
        elif name in ("q", "search", "name"):
            singles += [{name: "a"}, {name: "Org B"}]
        elif name == "limit":
            singles += [{name: 1}, {name: 500}]
    combos += singles
    own = [
        c for c in singles if all(v not in {str(x) for x in world_b.values()} for v in c.values())
    ]
    combos += [a | b for a, b in itertools.combinations(own, 2) if a.keys() != b.keys()][:40]
    return combos


@pytest.mark.parametrize("op", LIST_OPS, ids=lambda op: op.id)
def test_lists_and_exports_never_carry_foreign_ids(op, walls, tenants, api_for):
    a, world_a, b, world_b = tenants
    client = api_for(a)
    foreign = support.all_ids(b.id)
    checked = 0
    for query in _filter_combos(op, world_a, world_b):
        for fmt in (None, "csv"):
            q = dict(query)
            if fmt:
                if not any(p["name"] == "format" for p in op.query_params):
                    continue
                q["format"] = fmt
            resp = client.get(op.path, query_string=q)
            assert resp.status_code < 500, f"{op.id} {q}: {resp.status_code}"
            # Files (the audit pack's PDF/XLSX) are bytes: read them as Latin-1, never failing.
            text = resp.get_data().decode("latin-1").lower()
            leaked = [i for i in foreign if i in text or i.replace("-", "") in text]
            assert not leaked, f"{op.id}?{q} returned org B's ids {leaked[:3]}"
            # Follow a cursor page too.
            if resp.status_code == 200 and resp.is_json and isinstance(resp.get_json(), dict):
                cursor = resp.get_json().get("next_cursor")
                if cursor:
                    nxt = client.get(op.path, query_string=q | {"cursor": cursor})
                    assert not [i for i in foreign if i in nxt.get_data(as_text=True)]
            checked += 1
    assert checked
