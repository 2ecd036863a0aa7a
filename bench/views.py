"""Views benchmark: N employees x 20 certifications on a throwaway PostgreSQL database.

Measures, through HTTP (the Flask test client, app role bound by RLS), the first page, a page
filtered by `status=expired` and the last page of `GET /views/employees`, against the floor of
replaying the exact SQL those requests ran on a bare connection (one request, then one replay,
alternating); the compliance summary and group tree (p95 and statements per request: they read
the maintained counts); then the full CSV export's time and peak RSS in a child process. The
load average is printed beside each figure. `python -m bench views --size 100000`.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

from bench._support import load_average
from certifications.reporting.counts import verify as verify_counts

DEFAULT_SIZE = 10_000
CERTIFICATIONS = 20
PAGE = 50
REPEAT = 60
WARMUP = 5

LOAD_SQL = [
    """INSERT INTO roles (org_id, id, name)
       SELECT :org, gen_random_uuid(), 'Role ' || g FROM generate_series(1, 10) g""",
    """INSERT INTO certification_groups (org_id, id, name)
       SELECT :org, gen_random_uuid(), 'Group ' || g FROM generate_series(1, 4) g""",
    """INSERT INTO certifications (org_id, id, name, type, cost, validity_months, warning_days,
                                   valid_when_added, forms_required, notification_rules,
                                   task_rules)
       SELECT :org, gen_random_uuid(), 'Certification ' || lpad(g::text, 2, '0'), 'employee',
              10 * g, 12, 30, false, false, '[]', '[]'
       FROM generate_series(1, :certs) g""",
    """INSERT INTO certification_group_members (org_id, certification_id, group_id)
       SELECT c.org_id, c.id, g.id
       FROM (SELECT org_id, id, row_number() OVER (ORDER BY name) AS n FROM certifications) c
       JOIN (SELECT id, row_number() OVER (ORDER BY name) AS n FROM certification_groups) g
         ON g.n = 1 + c.n % 4""",
    # Names in no particular physical order, so the name index and the heap do not correlate.
    """INSERT INTO employees (org_id, id, name, email, role_id, active)
       SELECT :org, gen_random_uuid(), initcap(substr(md5(g::text), 1, 8)) || ' ' || g,
              'e' || g || '@example.com',
              (SELECT id FROM roles ORDER BY name OFFSET g % 10 LIMIT 1), g % 50 <> 0
       FROM generate_series(1, :n) g""",
    # About 70% valid, 8% expires soon, 7% expired, 8% missing, 4% upcoming, 3% revoked.
    """INSERT INTO assignments (org_id, id, certification_id, subject_type, subject_id, source,
                                required, status, issued_on, effective_on, expires_on,
                                revoked_at, revoked_reason)
       SELECT :org, gen_random_uuid(), c.id, 'employee', e.id, 'role', true, s.status,
              CASE WHEN s.status = 'missing' THEN NULL
                   WHEN s.status = 'upcoming' THEN current_date + 20
                   WHEN s.status = 'expired' THEN current_date - 400
                   WHEN s.status = 'expires_soon' THEN current_date - 355
                   ELSE current_date - 100 END,
              CASE WHEN s.status = 'missing' THEN NULL
                   WHEN s.status = 'upcoming' THEN current_date + 20
                   WHEN s.status = 'expired' THEN current_date - 400
                   WHEN s.status = 'expires_soon' THEN current_date - 355
                   ELSE current_date - 100 END,
              CASE WHEN s.status = 'missing' THEN NULL
                   WHEN s.status = 'upcoming' THEN current_date + 385
                   WHEN s.status = 'expired' THEN current_date - 35
                   WHEN s.status = 'expires_soon' THEN current_date + 10
                   ELSE current_date + 265 END,
              CASE WHEN s.status = 'revoked' THEN now() END,
              CASE WHEN s.status = 'revoked' THEN 'benchmark' END
       FROM employees e CROSS JOIN certifications c
       CROSS JOIN LATERAL (
         SELECT CASE WHEN h < 700 THEN 'valid' WHEN h < 780 THEN 'expires_soon'
                     WHEN h < 850 THEN 'expired' WHEN h < 930 THEN 'missing'
                     WHEN h < 970 THEN 'upcoming' ELSE 'revoked' END AS status
         FROM (SELECT abs(hashtext(e.id::text || c.id::text)) % 1000 AS h) x
       ) s""",
]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _setup_env(backend: Any) -> None:
    os.environ.update(
        CERTS_ENV="test",
        DATABASE_URL=backend.app_url,
        MIGRATION_DATABASE_URL=backend.owner_url,
        DB_APP_ROLE=backend.app_role,
        JWT_SECRET_KEY="bench-secret-" + "x" * 32,
    )
    os.environ.pop("REDIS_URL", None)


def _load(settings: Any, org_id: uuid.UUID, size: int) -> float:
    from sqlalchemy import create_engine, text

    started = time.perf_counter()
    owner = create_engine(settings.migration_database_url)
    with owner.begin() as conn:
        conn.execute(text("SELECT set_config('app.org_id', :o, true)"), {"o": str(org_id)})
        for sql in LOAD_SQL:
            conn.execute(text(sql), {"org": org_id, "n": size, "certs": CERTIFICATIONS})
    with owner.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    owner.dispose()
    return time.perf_counter() - started


class _Recorder:
    """Captures the statements a request runs, to replay them on a bare connection."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, Any]] = []

    def __call__(self, conn, cursor, statement, params, context, executemany) -> None:  # type: ignore[no-untyped-def]
        self.statements.append((statement, params))


def _request(client: Any, path: str, headers: dict[str, str]) -> tuple[float, dict]:
    t0 = time.perf_counter()
    resp = client.get(path, headers=headers)
    elapsed = time.perf_counter() - t0
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    return elapsed, resp.get_json()


def _measure(client: Any, path: str, headers: dict[str, str]) -> tuple[list[float], dict]:
    body: dict = {}
    times = []
    for i in range(WARMUP + REPEAT):
        elapsed, body = _request(client, path, headers)
        if i >= WARMUP:
            times.append(elapsed)
    return times, body


def _replay(cur: Any, statements: list[tuple[str, Any]]) -> float:
    t0 = time.perf_counter()
    for statement, params in statements:
        cur.execute(statement, params)
        if cur.description is not None:
            cur.fetchall()
    cur.connection.commit()
    return time.perf_counter() - t0


def _alternate(
    client: Any, path: str, headers: dict[str, str], engine: Any, statements: list[tuple[str, Any]]
) -> tuple[list[float], list[float], dict]:
    """One request, then one replay of its SQL on one pooled connection (tenant set-up, the
    page's statements), REPEAT times after WARMUP: a swing of the machine's load hits both."""
    times, floor, body = [], [], {}
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for i in range(WARMUP + REPEAT):
            elapsed, body = _request(client, path, headers)
            replayed = _replay(cur, statements)
            if i >= WARMUP:
                times.append(elapsed)
                floor.append(replayed)
    finally:
        raw.close()
    return times, floor, body


def _page_statements(
    client: Any, path: str, headers: dict[str, str], org_id: uuid.UUID
) -> list[tuple[str, Any]]:
    from sqlalchemy import event

    from infra import database as db

    rec = _Recorder()
    engine = db.get_engine()
    event.listen(engine, "before_cursor_execute", rec)
    try:
        client.get(path, headers=headers)
    finally:
        event.remove(engine, "before_cursor_execute", rec)
    # The transaction's tenant set-up, then the page's own statements; auth's organization
    # lookup (none when `tenancy.org_cache` holds the organization) is left out. The set-up is
    # no cursor execution (it travels with BEGIN: infra/pg_begin.py), so it is written here.
    from tenancy.scoping import _SET_TENANT

    tenant = (_SET_TENANT, {"org": str(org_id), "p": ""})
    return [tenant, *(st for st in rec.statements if "FROM organizations" not in st[0])]


def _last_page_cursor(org_id: uuid.UUID, size: int) -> str:
    from sqlalchemy import func, select

    from api.pagination import _encode
    from certifications.directory.models import Employee
    from infra import context
    from infra import database as db

    with context.tenant(org_id), db.new_session() as s:
        # The default view lists active employees only (2% of the loaded ones are inactive).
        listed = s.scalar(select(func.count()).where(Employee.active)) or size
        offset = max(0, listed - PAGE - 1)
        name, eid = s.execute(
            select(Employee.name, Employee.id)
            .where(Employee.active)
            .order_by(Employee.name, Employee.id)
            .offset(offset)
        ).first()
    return _encode([name, eid])


def _csv_child() -> None:
    """In a fresh process: stream the whole CSV export, report time, bytes, lines, peak RSS."""
    from api import create_app
    from infra.settings import load_settings
    from tenancy.auth import issue_token

    settings = load_settings()
    app = create_app(settings)
    token = issue_token(
        settings, sub="bench", org_id=os.environ["BENCH_ORG"], scopes=["certifications:read"]
    )
    client = app.test_client()
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    resp = client.get(
        "/api/v1/views/employees?format=csv", headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status_code == 200
    size = lines = 0
    for chunk in resp.response:
        data = chunk.encode() if isinstance(chunk, str) else chunk
        size += len(data)
        lines += data.count(b"\n")
    resp.close()
    elapsed = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {"seconds": elapsed, "bytes": size, "lines": lines, "rss_kb": peak, "base_kb": base_rss}
        )
    )


def main(size: int) -> None:
    from tests.support.backend import create_backend, drop_backend

    os.environ["CERTS_TEST_BACKEND"] = "postgres"
    backend = create_backend()
    try:
        _setup_env(backend)
        _run(backend, size)
    finally:
        from infra import database as db

        if db.registry.engine is not None:
            db.registry.engine.dispose()
        drop_backend(backend)


def _run(backend: Any, size: int) -> None:
    from infra import context, migrate
    from infra import database as db
    from infra.settings import load_settings
    from runtime import bootstrap
    from tenancy.auth import issue_token
    from tenancy.organizations import create_organization

    settings = load_settings()
    migrate.upgrade(settings)
    bootstrap(settings)
    with context.platform(), db.new_session() as s:
        org = create_organization(s, name="Bench", modules=["hse"])
        s.commit()
        org_id = org.id
    load_seconds = _load(settings, org_id, size)
    with context.tenant(org_id), db.new_session() as s:
        wrong = verify_counts(s)
    assert not wrong, f"compliance counts differ after loading: {wrong[:5]}"
    print(f"loaded {size} employees x {CERTIFICATIONS} certifications in {load_seconds:.1f} s")

    from api import create_app
    from infra import heap

    app = create_app(settings)
    heap.settle()  # as wsgi.py does after start-up
    client = app.test_client()
    token = issue_token(settings, sub="bench", org_id=str(org_id), scopes=["certifications:read"])
    headers = {"Authorization": f"Bearer {token}"}
    base = f"/api/v1/views/employees?limit={PAGE}"
    cases = {
        "first_page": base,
        "expired_page": base + "&status=expired",
        "last_page": base + "&cursor=" + _last_page_cursor(org_id, size),
    }
    result: dict[str, Any] = {"load_seconds": round(load_seconds, 1)}
    # What any authenticated request costs here (JWT, organization lookup, Flask): GET /org.
    load = load_average()
    times, _ = _measure(client, "/api/v1/org", headers)
    result["auth_only"] = {
        "p50_ms": _ms(statistics.median(times)),
        "p95_ms": _ms(_pct(times, 0.95)),
        "load_average": load,
    }
    print("auth_only", json.dumps(result["auth_only"]))
    for name, path in cases.items():
        statements = _page_statements(client, path, headers, org_id)
        load = load_average()
        times, floor, body = _alternate(client, path, headers, db.get_engine(), statements)
        assert len(body["items"]) == PAGE or size < PAGE, (name, len(body["items"]))
        if name == "last_page":
            assert body["next_cursor"] is None
        result[name] = {
            "p50_ms": _ms(statistics.median(times)),
            "p95_ms": _ms(_pct(times, 0.95)),
            "floor_p50_ms": _ms(statistics.median(floor)),
            "floor_p95_ms": _ms(_pct(floor, 0.95)),
            "ratio_p95": round(_pct(times, 0.95) / _pct(floor, 0.95), 2),
            "load_average": load,
        }
        print(name, json.dumps(result[name]))
    # The compliance figures read the maintained counts: p95 and statements per request
    # (constant whatever the number of assignments).
    for name, path in {
        "groups_tree": "/api/v1/views/groups",
        "summary": "/api/v1/compliance/summary",
    }.items():
        load = load_average()
        times, _ = _measure(client, path, headers)
        result[name] = {
            "p50_ms": _ms(statistics.median(times)),
            "p95_ms": _ms(_pct(times, 0.95)),
            "statements": len(_page_statements(client, path, headers, org_id)),
            "load_average": load,
        }
        print(name, json.dumps(result[name]))
    load = load_average()
    times = []
    for _ in range(1 + 5):
        t0 = time.perf_counter()
        assert (
            client.get("/api/v1/compliance/forecast?months=12", headers=headers).status_code == 200
        )
        times.append(time.perf_counter() - t0)
    result["forecast"] = {
        "p50_ms": _ms(statistics.median(times[1:])),
        "max_ms": _ms(max(times[1:])),
        "load_average": load,
    }
    print("forecast", json.dumps(result["forecast"]))
    db.registry.engine.dispose()  # type: ignore[union-attr]
    child = subprocess.run(
        [sys.executable, "-m", "bench.views", "--csv-child"],
        env={**os.environ, "BENCH_ORG": str(org_id)},
        capture_output=True,
        text=True,
        check=True,
    )
    csv_stats = json.loads(child.stdout.strip().splitlines()[-1])
    result["csv"] = {
        "seconds": round(csv_stats["seconds"], 2),
        "mb": round(csv_stats["bytes"] / 1e6, 1),
        "lines": csv_stats["lines"],
        "peak_rss_mb": round(csv_stats["rss_kb"] / 1024, 1),
        "rss_before_export_mb": round(csv_stats["base_kb"] / 1024, 1),
    }
    result["csv"]["load_average"] = load_average()
    print("csv", json.dumps(result["csv"]))
    summary = {
        "scenario": "views",
        "size": size,
        "seconds": round(_pct_s(result["first_page"]["p95_ms"]), 4),
        "floor_seconds": round(_pct_s(result["first_page"]["floor_p95_ms"]), 4),
        "naive_seconds": None,
        **result,
    }
    print(json.dumps(summary))


def _pct_s(ms: float) -> float:
    return ms / 1000


if __name__ == "__main__" and "--csv-child" in sys.argv:
    _csv_child()
