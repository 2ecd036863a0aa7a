"""The bare baseline of `bench api`: what the project's read endpoints cost without a framework.

A plain Flask app that, per request, verifies the same JWT with PyJWT, takes a connection from
a small psycopg pool, sets the same RLS tenant (`set_config('app.org_id', …)`), runs the
project's own SQL text for the endpoint (recorded from the project by `bench.api` and handed
over in the JSON file named by `BENCH_BASELINE_SPEC`), ends the transaction and answers the
same bytes with orjson. `bench.api` checks the bodies are byte-equal before it measures.

Run by gunicorn as `bench.api_baseline:app`; only `bench api` uses it.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import jwt
import orjson
import psycopg
from flask import Flask, Response, request

STATUSES = ("valid", "upcoming", "missing", "expires_soon", "expired", "revoked")
POOL_SIZE = 4  # per worker process (gunicorn's 2 threads, with room)


def _param(value: Any) -> Any:
    """A recorded bind value (UUIDs were tagged when written; arrays are lists)."""
    if isinstance(value, list):
        return [_param(v) for v in value]
    if isinstance(value, dict) and "uuid" in value:
        return uuid.UUID(value["uuid"])
    return value


def _load_spec() -> dict[str, Any]:
    with open(os.environ["BENCH_BASELINE_SPEC"], encoding="utf-8") as fh:
        spec: dict[str, Any] = json.load(fh)
    for endpoint in spec["endpoints"].values():
        endpoint["statements"] = [
            (sql, {k: _param(v) for k, v in params.items()})
            for sql, params in endpoint["statements"]
        ]
    return spec


class Pool:
    """A fixed set of connections handed out through a queue (opened lazily)."""

    def __init__(self, url: str, size: int) -> None:
        self.url = url
        self.free: queue.LifoQueue[psycopg.Connection[Any] | None] = queue.LifoQueue()
        for _ in range(size):
            self.free.put(None)

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        conn = self.free.get()
        if conn is None or conn.closed:
            conn = psycopg.connect(self.url)
        try:
            yield conn
        except BaseException:
            conn.close()
            self.free.put(None)
            raise
        self.free.put(conn)


SPEC = _load_spec()
POOL = Pool(SPEC["database_url"], POOL_SIZE)
app = Flask(__name__)


def _claims() -> dict[str, Any] | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    try:
        claims: dict[str, Any] = jwt.decode(
            header[7:], SPEC["jwt_secret"], algorithms=[SPEC["jwt_algorithm"]], leeway=0
        )
    except jwt.PyJWTError:
        return None
    return claims if isinstance(claims.get("org"), str) else None


def _run(name: str) -> list[list[tuple[Any, ...]]]:
    """The endpoint's recorded statements in one transaction as the token's tenant."""
    claims = _claims()
    if claims is None:
        raise PermissionError
    results = []
    with POOL.connection() as conn:
        cur = conn.cursor()
        cur.execute(
            "SELECT set_config('app.org_id', %(org)s, true), set_config('app.platform', '', true)",
            {"org": claims["org"]},
        )
        for sql, params in SPEC["endpoints"][name]["statements"]:
            cur.execute(sql, params)
            results.append(cur.fetchall() if cur.description is not None else [])
        conn.rollback()  # read-only: end the transaction
    return results


def _cursor(values: list[Any]) -> str:
    raw = json.dumps([str(v) for v in values])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _json(body: Any, sort: bool) -> Response:
    """`sort`: as Flask's JSON provider writes it (keys sorted, a final newline)."""
    option = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE if sort else 0
    return Response(orjson.dumps(body, option=option), mimetype="application/json")


@app.errorhandler(PermissionError)
def _unauthorized(_exc: PermissionError) -> Response:
    return Response(b'{"message":"Invalid token."}', status=401, mimetype="application/json")


def _columns(name: str, index: int) -> list[str]:
    """The result column names of an endpoint's recorded statement (`bench.api` wrote them)."""
    columns: list[str] = SPEC["endpoints"][name]["columns"][index]
    return columns


ORG_COLUMNS = _columns("org", -1)
EMPLOYEE_COLUMNS = _columns("employees", 0)
ROLE_COLUMNS = _columns("employees", 1)
VIEW_COLUMNS = _columns("views", -2)


@app.get("/api/v1/org")
def org() -> Response:
    *_before, rows = _run("org")
    item = dict(zip(ORG_COLUMNS, rows[0], strict=True))
    if "webhook_secret" in item:  # the project selected the column, not whether it is set
        item["webhook_secret_set"] = item.pop("webhook_secret") is not None
    for key in ("created_at", "updated_at"):
        item[key] = item[key].isoformat()
    return _json(item, sort=True)


@app.get("/api/v1/employees")
def employees() -> Response:
    limit = int(request.args.get("limit", "50"))
    page, roles = _run("employees")
    role_ids: dict[Any, list[Any]] = {}
    for found in roles:
        role = dict(zip(ROLE_COLUMNS, found, strict=True))
        role_ids.setdefault(role["employee_id"], []).append(role["role_id"])
    items = []
    for row in page[:limit]:
        item = dict(zip(EMPLOYEE_COLUMNS, row, strict=True))
        item.pop("org_id", None)
        first = [item["role_id"]] if item["role_id"] else []
        item["role_ids"] = role_ids.get(item["id"]) or first
        item["job_id"] = None
        for key in ("created_at", "updated_at"):
            item[key] = item[key].isoformat()
        items.append(item)
    last = items[-1] if len(page) > limit else None
    next_cursor = _cursor([last["name"], last["id"]]) if last else None
    return _json({"items": items, "next_cursor": next_cursor}, sort=True)


@app.get("/api/v1/views/employees")
def views_employees() -> Response:
    limit = int(request.args.get("limit", "50"))
    *_before, page, found = _run("views")
    rows: dict[Any, dict[str, Any]] = {}
    for values in page[:limit]:
        e = dict(zip(VIEW_COLUMNS, values, strict=True))
        rows[e["id"]] = {
            "id": e["id"],
            "name": e["name"],
            "external_id": e["external_id"],
            "active": e["active"],
            "email": e["email"],
            "role_id": e["role_id"],
            "certifications": [],
            "summary": dict.fromkeys(STATUSES, 0) | {"exempt": 0},
        }
    for sid, aid, cid, cname, status, required, issued, effective, expires, exempt_at in found:
        row = rows[sid]
        row["summary"]["exempt" if exempt_at else status] += 1
        row["certifications"].append(
            {
                "certification_id": cid,
                "name": cname,
                "status": status,
                "required": required,
                "issued_on": issued,
                "effective_on": effective,
                "expires_on": expires,
                "assignment_id": aid,
                "exempt": bool(exempt_at),
            }
        )
    items = list(rows.values())
    more = len(page) > limit
    next_cursor = _cursor([items[-1]["name"], items[-1]["id"]]) if more else None
    return _json({"items": items, "next_cursor": next_cursor}, sort=False)
