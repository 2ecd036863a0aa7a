"""Hostile input on every operation of the document: never a 500, always the one error shape
naming where (attack run, defect 9).

- a lone surrogate (`"x\\ud800"`) in any string or key of any JSON body: valid JSON, but
  not storable text (UTF-8 cannot encode it; it used to fail at the database driver);
- JSON nested 100,000 deep (a RecursionError in the stdlib parser) and just past the limit;
- garbage `cursor`s on every paginated list (NUL or a surrogate inside, non-base64, wrong
  shapes), and NUL in every string query parameter.

Operations come from the OpenAPI document (`tests/security/support.py`), so a new endpoint is
covered the moment it is registered.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from api.body import MAX_JSON_DEPTH
from infra import context
from infra import database as db
from tenancy.auth import TENANT_SCOPES, issue_token
from tenancy.organizations import create_organization
from tests.security import support
from tests.security.support import Operation
from tests.support import factories
from tests.support.suite import SETTINGS

OPS = support.operations()
BODY_OPS = [op for op in OPS if op.body_schema is not None]
CURSOR_OPS = [op for op in OPS if any(p["name"] == "cursor" for p in op.query_params)]
SURROGATE = "x\ud800"
ERROR_KEYS = {"code", "status", "message", "errors"}


@functools.cache
def _world() -> tuple[factories.World, str]:
    """One org with the HSE module and a row of every kind; a token with every scope."""
    with context.platform(), db.new_session() as s:
        org = create_organization(s, name=f"Hostile {uuid.uuid4().hex[:6]}", modules=["hse"])
        s.commit()
    world = factories.create_world(org.id)
    token = issue_token(SETTINGS, sub="attacker", org_id=str(org.id), scopes=list(TENANT_SCOPES))
    return world, token


@functools.cache
def _self_token() -> str:
    """The world's employee's own token (its `user_sub` is its id): for the /me endpoints."""
    import jwt

    world, token = _world()
    org_id = jwt.decode(token, options={"verify_signature": False})["org"]
    return issue_token(SETTINGS, sub=str(world["employee"]), org_id=org_id, scopes=["self"])


@functools.cache
def _platform_token() -> str:
    return issue_token(SETTINGS, sub="attacker", org_id=None, scopes=["platform:admin"])


@pytest.fixture
def call(app):
    world, tenant_token = _world()
    client = app.test_client()

    def _call(op: Operation, *, body: Any = None, raw: bytes | None = None, query: Any = None):
        path = "/api/v1" + support.build_path(op, world)
        token = _platform_token() if op.is_platform else tenant_token
        token = _self_token() if op.is_self else token
        kw: dict[str, Any] = {"headers": {"Authorization": f"Bearer {token}"}}
        required = urlencode(support.required_query(op, world))
        if isinstance(query, str):  # raw, already percent-encoded
            kw["query_string"] = "&".join(q for q in (required, query) if q)
        else:
            kw["query_string"] = {**support.required_query(op, world), **(query or {})}
        if raw is not None:
            kw["data"] = raw
            kw["content_type"] = "application/json"
        elif body is not None:
            kw["json"] = body
        return getattr(client, op.method)(path, **kw)

    return _call


def _error(resp: Any, status: int | tuple[int, ...]) -> dict[str, Any]:
    statuses = (status,) if isinstance(status, int) else status
    assert resp.status_code in statuses, (resp.status_code, resp.get_data()[:500])
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json()
    assert set(body) >= ERROR_KEYS, body
    return body


def _paths(errors: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(errors, dict):
        for key, value in errors.items():
            yield from _paths(value, (*prefix, str(key)))
    else:
        yield prefix


# --- lone surrogates -------------------------------------------------------------------------


def _string_slots(schema: dict[str, Any], depth: int = 0) -> Iterator[tuple[Any, ...]]:
    """Paths (keys and list indexes) of the writable string-ish places of a body schema."""
    for name, sub in (schema.get("properties") or {}).items():
        if sub.get("readOnly"):
            continue
        typ = sub.get("type")
        if typ == "array":
            items = sub.get("items") or {}
            if items.get("properties") and depth < 2:
                for inner in _string_slots(items, depth + 1):
                    yield (name, 0, *inner)
            else:
                yield (name, 0)
        elif (typ == "object" or sub.get("properties")) and depth < 2:
            inner_slots = list(_string_slots(sub, depth + 1))
            yield from ((name, *inner) for inner in inner_slots)
            if not inner_slots:
                yield (name, "answer")  # a free-form object: any key
        else:
            yield (name,)


def _with(body: Any, slot: tuple[Any, ...], value: Any) -> Any:
    body = copy.deepcopy(body) if body is not None else {}
    target = body
    for here, nxt in zip(slot, slot[1:], strict=False):
        if isinstance(target, list):
            while len(target) <= here:
                target.append({} if not isinstance(nxt, int) else [])
            if not isinstance(target[here], dict | list):
                target[here] = {} if not isinstance(nxt, int) else []
            target = target[here]
        else:
            if not isinstance(target.get(here), dict | list):
                target[here] = [] if isinstance(nxt, int) else {}
            target = target[here]
    last = slot[-1]
    if isinstance(target, list):
        while len(target) <= last:
            target.append(None)
    target[last] = value
    return body


def _surrogate_cases(
    op: Operation, world: factories.World
) -> list[tuple[str, Any, tuple[str, ...]]]:
    base = support.sample_body(op, world)
    cases = []
    for slot in _string_slots(op.body_schema or {}):
        cases.append((".".join(map(str, slot)), _with(base, slot, SURROGATE), slot))
    if op.path.endswith("/bulk"):
        row = {"external_id": "E1", "name": SURROGATE}
        cases.append(("items.1.name", {"items": [{"external_id": "E0", "name": "ok"}, row]}, ()))
    key = "k\udc00"
    cases.append(("key", {**(base or {}), key: "v"}, (key,)))
    return cases


@pytest.mark.parametrize("op", BODY_OPS, ids=lambda op: op.id)
def test_lone_surrogate_anywhere_in_a_body_is_422_naming_it(call, op: Operation) -> None:
    world, _ = _world()
    for label, body, _slot in _surrogate_cases(op, world):
        body_json = _error(call(op, body=body), 422)
        paths = [".".join(p) for p in _paths(body_json["errors"])]
        assert any(p.startswith("json") for p in paths), (label, body_json)
        if label != "key":
            assert any(p == "json." + label for p in paths), (label, body_json)
        assert "surrogate" in json.dumps(body_json["errors"]).lower(), (label, body_json)


def test_text_fields_refuse_lone_surrogates_on_their_own() -> None:
    """Beside the body check: CSV cells and anything loaded without it meet the field."""
    from marshmallow import Schema, ValidationError

    from api.fields import Text

    schema = Schema.from_dict({"name": Text()})()
    with pytest.raises(ValidationError) as info:
        schema.load({"name": SURROGATE})
    assert "surrogate" in str(info.value.messages["name"]).lower()
    assert schema.load({"name": "emoji \U0001f600 ok"}) == {"name": "emoji \U0001f600 ok"}


def test_a_valid_surrogate_pair_is_just_a_character(call) -> None:
    op = next(op for op in OPS if op.id == "POST /roles")
    resp = call(op, raw=b'{"name": "smile \\ud83d\\ude00"}')
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["name"] == "smile \U0001f600"


# --- nesting ---------------------------------------------------------------------------------


@pytest.mark.parametrize("op", BODY_OPS, ids=lambda op: op.id)
def test_deeply_nested_json_is_400(call, op: Operation) -> None:
    for raw in (
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b'{"items": ' + b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1) + b"}",
    ):
        body = _error(call(op, raw=raw), 400)
        assert "json" in body["errors"], body
        assert "nested" in body["message"].lower(), body


def test_nesting_up_to_the_limit_is_parsed() -> None:
    from api.body import loads

    assert loads("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH) is not None


# --- query strings ---------------------------------------------------------------------------


def _cursor(values: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def _raw_cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


GARBAGE_CURSORS = {
    "nul-in-value": _cursor(["a\x00b", str(uuid.uuid4())]),
    "surrogate-in-value": _cursor([SURROGATE, str(uuid.uuid4())]),
    "nul-in-id": _cursor(["a", "\x00"]),
    "surrogate-in-id": _cursor(["a", SURROGATE]),
    "not-base64": "!!!***",
    "not-json": _raw_cursor(b"\xff\xfe\xfa garbage"),
    "not-a-list": _cursor({"a": 1}),
    "wrong-length": _cursor(["a"]),
    "numbers": _cursor([1, 2]),
    "nested": _raw_cursor(b"[" * 700 + b"]" * 700),
    "utf16": _raw_cursor(json.dumps(["a", str(uuid.uuid4())]).encode("utf-16")),
    "huge-int": _cursor(["9" * 40, str(uuid.uuid4())]),
    "far-datetime": _cursor(["9999-12-31T23:59:59-14:00", str(uuid.uuid4())]),
    "ancient-datetime": _cursor(["0001-01-01T00:00:00+14:00", str(uuid.uuid4())]),
    "literal-nul": "abc\x00def",
}


@pytest.mark.parametrize("op", CURSOR_OPS, ids=lambda op: op.id)
@pytest.mark.parametrize("cursor", GARBAGE_CURSORS.values(), ids=list(GARBAGE_CURSORS))
def test_garbage_cursor_is_422_naming_cursor(call, op: Operation, cursor: str) -> None:
    resp = call(op, query={"cursor": cursor})
    if resp.status_code == 200:
        # A value of the right type for this list's keys (e.g. a name): a position, not garbage.
        positions = ("huge-int", "far-datetime", "ancient-datetime")
        assert cursor in [GARBAGE_CURSORS[name] for name in positions], resp.get_json()
        return
    body = _error(resp, 422)
    assert "cursor" in body["errors"].get("query", {}), body


@pytest.mark.parametrize("op", [op for op in OPS if op.query_params], ids=lambda op: op.id)
def test_nul_in_any_string_query_parameter_is_never_a_500(call, op: Operation) -> None:
    for param in op.query_params:
        schema = support.resolve(op.doc, param.get("schema")) or {}
        if schema.get("type") not in ("string", None):
            continue
        # NUL; the UTF-8 bytes of a surrogate (invalid UTF-8); bytes that are no UTF-8 at all.
        for value in ("a%00b", "%ED%A0%80", "%FF%FE", quote("\ufffd")):
            resp = call(op, query=f"{param['name']}={value}")
            try:
                assert resp.status_code < 500, (param["name"], value, resp.get_data()[:300])
                if resp.status_code >= 400:
                    _error(resp, resp.status_code)
            finally:
                resp.close()  # a CSV export streams: close it, as a client would
