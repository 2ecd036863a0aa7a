"""As-of benchmark: the summary of a past day read from history, at N employees x 20
certifications (N = 50,000: a million assignments) on a throwaway PostgreSQL database.

Loads the views benchmark's data, then history as the writers leave it: a requirement period
per assignment (started 400 days ago; 5% ended 200 days ago, as role changes do, the others open
on their rows), a closed cycle for 10% of the assignments (renewed 60 days ago) and an
exemption for 2%. Measures through HTTP
`GET /compliance/summary?on=<90 days ago>` computed from history next to today's summary, the
cost of writing that day's snapshot (the tick's statement), the same summary answered from the
snapshot, and the trend's year of snapshots for a 500-certification org (182,500 rows).
`python -m bench asof --size 50000`.
"""

from __future__ import annotations

import json
import os
import statistics
import time
import uuid
from datetime import timedelta
from typing import Any

from bench._support import load_average
from bench.views import LOAD_SQL, _load, _ms, _pct, _setup_env

DEFAULT_SIZE = 50_000
REPEAT = 5
TREND_CERTIFICATIONS = 500

HISTORY_SQL = [
    # The catalog existed before the history below (a past day's summary then reads it).
    "UPDATE certifications SET created_at = now() - interval '500 days'",
    # Closed periods in `requirement_periods`, open ones on the assignment rows.
    """INSERT INTO requirement_periods (org_id, id, assignment_id, certification_id,
                                        subject_type, subject_id, required, starts_on, ends_on)
       SELECT org_id, gen_random_uuid(), id, certification_id, subject_type, subject_id, true,
              current_date - 400, current_date - 200
       FROM assignments WHERE abs(hashtext(id::text)) % 100 < 5""",
    """UPDATE assignments SET counted_since = current_date - 400, counted_required = true
       WHERE abs(hashtext(id::text)) % 100 >= 5""",
    """INSERT INTO assignment_cycles (org_id, id, assignment_id, cycle, issued_on,
                                      effective_on, expires_on, created_at, closed_at)
       SELECT org_id, gen_random_uuid(), id, 1, current_date - 430, current_date - 430,
              current_date - 65, now() - interval '430 days', now() - interval '60 days'
       FROM assignments WHERE abs(hashtext(id::text || 'c')) % 100 < 10""",
    """UPDATE assignments SET cycle = 2
       WHERE abs(hashtext(id::text || 'c')) % 100 < 10""",
    """INSERT INTO exemption_periods (org_id, id, assignment_id, reason, starts_on)
       SELECT org_id, gen_random_uuid(), id, 'benchmark', current_date - 120
       FROM assignments WHERE abs(hashtext(id::text || 'x')) % 100 < 2""",
    """INSERT INTO certifications (org_id, id, name, type, validity_months, warning_days,
                                   valid_when_added, forms_required, notification_rules,
                                   task_rules)
       SELECT :org, gen_random_uuid(), 'Trend ' || lpad(g::text, 3, '0'), 'employee', 12, 30,
              false, false, '[]', '[]'
       FROM generate_series(1, :trend_certs) g""",
    """INSERT INTO compliance_snapshots (org_id, id, certification_id, day, valid, upcoming,
                                         missing, expires_soon, expired, revoked, exempt,
                                         required, compliant)
       SELECT c.org_id, gen_random_uuid(), c.id, current_date - d, 70, 4, 8, 8, 7, 3, 2, 100, 78
       FROM certifications c CROSS JOIN generate_series(0, 364) d
       WHERE c.name LIKE 'Trend %'""",
]


def _history(settings: Any, org_id: uuid.UUID) -> float:
    from sqlalchemy import create_engine, text

    started = time.perf_counter()
    owner = create_engine(settings.migration_database_url)
    with owner.begin() as conn:
        conn.execute(text("SELECT set_config('app.org_id', :o, true)"), {"o": str(org_id)})
        for sql in HISTORY_SQL:
            conn.execute(text(sql), {"org": org_id, "trend_certs": TREND_CERTIFICATIONS})
    with owner.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    owner.dispose()
    return time.perf_counter() - started


def _time(client: Any, path: str, headers: dict[str, str]) -> dict[str, float]:
    times = []
    for _ in range(1 + REPEAT):
        t0 = time.perf_counter()
        resp = client.get(path, headers=headers)
        times.append(time.perf_counter() - t0)
        assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    rest = times[1:]
    return {
        "first_ms": _ms(times[0]),
        "p50_ms": _ms(statistics.median(rest)),
        "p95_ms": _ms(_pct(rest, 0.95)),
    }


def main(size: int) -> None:
    from tests.support.backend import create_backend, drop_backend

    os.environ["CERTS_TEST_BACKEND"] = "postgres"  # a throwaway PostgreSQL database, as views
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
    from api import create_app
    from infra import context, migrate
    from infra import database as db
    from infra.settings import load_settings
    from runtime import bootstrap
    from tenancy.auth import issue_token
    from tenancy.organizations import create_organization, org_today

    assert LOAD_SQL
    settings = load_settings()
    migrate.upgrade(settings)
    bootstrap(settings)
    with context.platform(), db.new_session() as s:
        org = create_organization(s, name="Bench", modules=["hse"])
        s.commit()
        org_id = org.id
    load = _load(settings, org_id, size)
    history = _history(settings, org_id)
    print(f"loaded {size * 20:,} assignments in {load:.1f} s, their history in {history:.1f} s")
    client = create_app(settings).test_client()
    token = issue_token(settings, sub="bench", org_id=str(org_id), scopes=["certifications:read"])
    headers = {"Authorization": f"Bearer {token}"}
    today = org_today("UTC", db.utcnow())
    past = today - timedelta(days=90)
    year = today - timedelta(days=364)
    cases = {
        "summary_today": "/api/v1/compliance/summary",
        "summary_on_past_day": f"/api/v1/compliance/summary?on={past}",
        "trend_year_500_certs": f"/api/v1/compliance/trend?from={year}&to={today}",
    }
    result: dict[str, Any] = {"assignments": size * 20}
    for name, path in cases.items():
        result[name] = _time(client, path, headers)
        print(name, json.dumps(result[name]), f"(load {load_average()})")
    # What the tick's (or the backfill's) snapshot of that day costs, then the same summary
    # answered from the snapshots.
    from certifications.history.asof import AsOf
    from certifications.history.snapshots import snapshot_day

    with context.tenant(org_id), db.new_session() as s:
        t0 = time.perf_counter()
        snapshot_day(s, org_id, AsOf.of("UTC", past))
        s.commit()
        result["snapshot_write_ms"] = _ms(time.perf_counter() - t0)
    print("snapshot_write_ms", result["snapshot_write_ms"], f"(load {load_average()})")
    name = "summary_on_past_day_from_snapshots"
    result[name] = _time(client, cases["summary_on_past_day"], headers)
    print(name, json.dumps(result[name]), f"(load {load_average()})")
    result["load_average"] = load_average()
    print(json.dumps(result))


if __name__ == "__main__":
    import sys

    main(int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SIZE)
