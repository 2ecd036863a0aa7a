"""Permissions, operation by operation: scopes, the HSE module flag, and mass assignment.

The needed scope is read from each operation's description (`requires` writes
"Requires scope `x`."), so a new endpoint is checked the moment it is documented; an operation
that declares nothing fails.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.security import support
from tests.security.support import Operation

OPS = support.operations()
WRITE_OPS = [op for op in OPS if op.method in support.WRITE_METHODS and op.body_schema]
INJECTED = {"org_id": None, "id": None, "status": "valid", "scopes": ["platform:admin"]}


@pytest.fixture
def own(make_org, make_world):
    org = make_org()
    return org, make_world(org)


def _call(client: Any, op: Operation, world: dict, body: Any = None) -> Any:
    kw: dict[str, Any] = {"query_string": support.required_query(op, world)}
    if body is not None:
        kw["json"] = body
    return getattr(client, op.method)(support.build_path(op, world), **kw)


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.id)
def test_every_operation_declares_what_it_needs(op) -> None:
    assert op.required_scopes is not None, (
        f"{op.id} has no `requires` (no 'Requires scope' in its description)"
    )
    assert op.spec.get("security") == [{"bearerAuth": []}], f"{op.id} is not documented as bearer"


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.id)
def test_no_token_is_401(op, own, app) -> None:
    _org, world = own
    client = app.test_client()
    kw: dict[str, Any] = {"query_string": support.required_query(op, world)}
    body = support.sample_body(op, world)
    if body is not None:
        kw["json"] = body
    resp = getattr(client, op.method)("/api/v1" + support.build_path(op, world), **kw)
    assert resp.status_code == 401, f"{op.id}: {resp.status_code}"
    assert resp.get_json()["code"] == 401


@pytest.mark.parametrize("op", [op for op in OPS if op.required_scopes], ids=lambda op: op.id)
def test_every_scope_but_the_needed_one_is_403(op, own, api_for) -> None:
    org, world = own
    needed = op.required_scopes
    # A platform endpoint gets a tenant token with every tenant scope.
    client = api_for(org, scopes=support.all_scopes_but(needed))
    before = support.snapshot(org.id)
    resp = _call(client, op, world, support.sample_body(op, world))
    assert resp.status_code == 403, f"{op.id}: {resp.status_code} {resp.get_data(as_text=True)}"
    body = resp.get_json()
    assert body["code"] == 403
    assert any(s in body["message"] for s in needed), body
    assert support.snapshot(org.id) == before


@pytest.mark.parametrize("op", [op for op in OPS if not op.is_platform], ids=lambda op: op.id)
def test_module_flag(op, make_org, api_for, make_world) -> None:
    """HSE families answer 403 module_disabled for an org without the module; others never do."""
    off = make_org(modules=())
    world = make_world(off)
    before = support.snapshot(off.id)
    # /me answers a worker's own token (the world's employee signs in as itself).
    client = api_for(off, scopes=["self"], sub=str(world["employee"])) if op.is_self else None
    resp = _call(client or api_for(off), op, world, support.sample_body(op, world))
    body = resp.get_json(silent=True) or {}
    disabled = resp.status_code == 403 and body.get("code") == "module_disabled"
    if op.is_hse:
        assert disabled, f"{op.id} without the hse module: {resp.status_code} {body}"
        assert body["http_status"] == 403
        assert support.snapshot(off.id) == before
    else:
        assert not disabled, f"{op.id} is not an HSE endpoint but needs the module"


@pytest.mark.parametrize("op", WRITE_OPS, ids=lambda op: op.id)
@pytest.mark.parametrize("field", sorted(INJECTED))
def test_mass_assignment_is_422(op, field, own, api_for, make_org) -> None:
    org, world = own
    if field in op.body_schema.get("properties", {}):
        pytest.skip(f"{field} is a documented input of {op.id}")
    if op.body_schema.get("type") not in (None, "object") or not op.body_schema.get("properties"):
        pytest.skip(f"{op.id} takes no JSON object")
    other = make_org()
    value = INJECTED[field]
    if field == "org_id":
        value = str(other.id)
    elif field == "id":
        value = str(world.get("role"))
    client = api_for(None, scopes=["platform:admin"]) if op.is_platform else api_for(org)
    body = support.sample_body(op, world) or {}
    body[field] = value
    before, before_other = support.snapshot(org.id), support.snapshot(other.id)
    resp = _call(client, op, world, body)
    assert resp.status_code == 422, f"{op.id} +{field}: {resp.status_code} {resp.get_data(True)}"
    errors = resp.get_json()["errors"]
    assert field in str(errors), errors
    assert support.snapshot(org.id) == before
    assert support.snapshot(other.id) == before_other


DIRECTORY_PREFIXES = ("/roles", "/employees", "/assets", "/clients", "/locations")


def _allowed_scopes(op: Operation) -> set[str] | None:
    """SPEC §3/§9: which scopes may guard an operation (None: not governed by the table)."""
    if op.is_self:
        return {"self"}
    if op.path.startswith("/submissions"):
        return {"certifications:review"}
    if op.path.startswith(DIRECTORY_PREFIXES):
        return {"directory:read"} if op.method == "get" else {"directory:write"}
    if op.path.startswith(support.HSE_PREFIXES):
        if op.method == "get":
            return {"certifications:read"}
        if op.method == "delete":
            return {"certifications:delete"}
        if op.method == "patch":
            return {"certifications:update"}
        if op.method == "put":  # an upsert (PUT /notification-preferences/{email})
            return {"certifications:create", "certifications:update"}
        # POST /x/{id}/renew, /move, /archive, ...; POST /assignments/bulk, /notifications/retry
        is_action = op.path.count("/") >= 3 or op.path.endswith(("/bulk", "/retry"))
        return (
            {"certifications:create", "certifications:update"}
            if is_action
            else {"certifications:create"}
        )
    if op.path.startswith(("/audit-events", "/webhooks")) or op.id in (
        "PATCH /org",
        "PUT /org/modules/{module}",
    ):
        return {"org:admin"}
    if op.path.startswith("/jobs"):
        return {"certifications:read", "directory:read"}
    if op.path.startswith("/organizations"):
        return {"platform:admin"}
    return None


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.id)
def test_declared_scope_follows_the_spec(op) -> None:
    """A weakened declaration (e.g. a write accepting a read scope) fails here, since the
    matrix above trusts the declaration."""
    allowed = _allowed_scopes(op)
    if allowed is None:
        assert op.id == "GET /org", f"{op.id}: add its scope rule to _allowed_scopes"
        return
    declared = set(op.required_scopes or [])
    assert declared, f"{op.id} needs one of {sorted(allowed)}"
    assert declared <= allowed, (
        f"{op.id} declares {sorted(declared)}, SPEC allows {sorted(allowed)}"
    )


@pytest.mark.parametrize("op", [op for op in OPS if not op.is_self], ids=lambda op: op.id)
def test_a_self_token_reaches_nothing_but_me(op, own, api_for) -> None:
    """A token carrying `self` is refused everywhere outside /me, whatever else it carries
    (here: every tenant scope), and as the world's own linked employee."""
    org, world = own
    client = api_for(org, scopes=[*support.TENANT_SCOPES, "self"], sub=str(world["employee"]))
    before = support.snapshot(org.id)
    resp = _call(client, op, world, support.sample_body(op, world))
    assert resp.status_code == 403, f"{op.id}: {resp.status_code} {resp.get_data(as_text=True)}"
    assert resp.get_json()["errors"] in ({"scope": ["self"]}, {"scope": ["platform:admin"]})
    assert support.snapshot(org.id) == before
