"""`python -m bench recompute --size N`: recompute the statuses of an org of N assignments.

N assignments over 10 certifications (warning windows 14–60 days, two with forms required)
spread over every status: 5% unrecorded, 2% revoked, 2% upcoming, 10% never expiring, the rest
issued over the last two years with a one-year validity. A first recomputation on day 0 stores
the statuses (untimed); the timed run recomputes for day 0 + `SHIFT_DAYS`, so the assignments
whose expiry entered the warning window or passed, and the upcoming ones that started, change
(about 5%).

* seconds: `certifications.assignments.recompute.recompute_statuses` (chunked, status events
  included).
* floor: one raw `UPDATE assignments … SET status = CASE … FROM certifications WHERE … AND
  status <> CASE …` (the same CASE), no events, no chunks, no compliance counts maintained
  (their triggers are off during the floor run: `bench._support.counts_off`).
* naive: a per-row ORM loop (load assignment + certification, `assignment_status`, set, add a
  StatusEvent), measured on at most `NAIVE_ROWS` rows and scaled linearly to N.

* events on: `seconds` again with an enabled webhook endpoint subscribed to every event type, so
  the status events' trigger writes one webhook event and one delivery per change in the same
  statements (`events_on_seconds`, `events_on_ratio`; `seconds`/`ratio` are events off: no
  endpoint, the trigger writes nothing). Nothing is sent: delivery is the `webhooks` benchmark.

Between timed runs the day-0 statuses are restored and the events deleted (untimed; VACUUM on
PostgreSQL when the owner URL is known). Medians of `REPEATS`, the two runs alternating; the
load average of each round is printed beside the figures.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from sqlalchemy import and_, create_engine, delete, func, insert, select, text, update

from bench._support import counts_off, load_average
from certifications.assignments.models import Assignment, StatusEvent
from certifications.assignments.recompute import recompute_statuses, status_case_sql
from certifications.assignments.status import assignment_status
from certifications.catalog.models import Certification
from certifications.webhooks.models import WebhookEndpoint, WebhookEvent
from infra import context, migrate
from infra import database as db
from infra.settings import load_settings
from runtime import bootstrap
from tenancy.organizations import create_organization
from tenancy.scoping import tenant_statement
from tenancy.sealed import SealedSecret

DEFAULT_SIZE = 100_000
REPEATS = 3
NAIVE_ROWS = 20_000
BATCH = 10_000
SHIFT_DAYS = 7
DAY0 = date(2026, 6, 1)
CERTS = [  # (warning_days, forms_required)
    (30, False),
    (30, False),
    (14, False),
    (60, False),
    (30, True),
    (45, False),
    (30, False),
    (21, True),
    (30, False),
    (14, False),
]

A = Assignment.__table__
C = Certification.__table__

PG_LOAD = """
INSERT INTO assignments (org_id, id, certification_id, subject_type, subject_id, source,
    required, cycle, issued_on, effective_on, expires_on, expires_explicit, form_accepted_at,
    status, status_changed_at, revoked_at, revoked_reason, created_at, updated_at)
SELECT :org, gen_random_uuid(), (:certs)[1 + (g % :ncerts)], 'employee', gen_random_uuid(),
    'role', true, 1, x.issued, x.issued, x.expires, false,
    CASE WHEN rr.r3 < 0.5 THEN now() END, 'missing', now(),
    CASE WHEN rr.r1 >= 0.05 AND rr.r1 < 0.07 THEN now() END,
    CASE WHEN rr.r1 >= 0.05 AND rr.r1 < 0.07 THEN 'bench' END, now(), now()
FROM generate_series(:lo, :hi) AS g,
LATERAL (SELECT random() AS r1, random() AS r2, random() AS r3 WHERE g IS NOT NULL) AS rr,
LATERAL (
    SELECT
        CASE WHEN rr.r1 < 0.05 THEN NULL
             WHEN rr.r1 < 0.09 THEN CAST(:day0 AS date) + 1 + (rr.r2 * 10)::int
             ELSE CAST(:day0 AS date) - (rr.r2 * 730)::int END AS issued,
        CASE WHEN rr.r1 < 0.05 THEN NULL
             WHEN rr.r1 < 0.09 THEN CAST(:day0 AS date) + 366 + (rr.r2 * 10)::int
             WHEN rr.r1 < 0.19 THEN NULL
             ELSE CAST(:day0 AS date) - (rr.r2 * 730)::int + 365 END AS expires
) AS x
"""


def _setup(size: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    with context.platform(), db.new_session() as s:
        org = create_organization(
            s, name=f"bench recompute {uuid.uuid4().hex[:6]}", modules=["hse"]
        )
        s.commit()
    with context.tenant(org.id), db.new_session() as s:
        certs = [
            Certification(
                name=f"Certification {i}",
                type="employee",
                validity_months=12,
                warning_days=w,
                forms_required=f,
            )
            for i, (w, f) in enumerate(CERTS)
        ]
        s.add_all(certs)
        s.flush()
        cert_ids = [c.id for c in certs]
        if s.get_bind().dialect.name == "postgresql":
            for lo in range(0, size, 100_000):
                s.execute(
                    tenant_statement(text(PG_LOAD)),  # writes :org's rows only
                    {
                        "org": org.id,
                        "certs": cert_ids,
                        "ncerts": len(cert_ids),
                        "lo": lo,
                        "hi": min(size, lo + 100_000) - 1,
                        "day0": DAY0,
                    },
                )
        else:
            _load_python(s, org.id, cert_ids, size)
        s.commit()
    return org.id, cert_ids


def _load_python(s: Any, org_id: uuid.UUID, cert_ids: list[uuid.UUID], size: int) -> None:
    rnd = random.Random(42)
    now = db.utcnow()
    for start in range(0, size, BATCH):
        rows = []
        for i in range(start, min(size, start + BATCH)):
            r1, r2, r3 = rnd.random(), rnd.random(), rnd.random()
            if r1 < 0.05:
                issued = expires = None
            elif r1 < 0.09:
                issued = DAY0 + timedelta(days=1 + round(r2 * 10))
                expires = issued + timedelta(days=365)
            else:
                issued = DAY0 - timedelta(days=round(r2 * 730))
                expires = None if r1 < 0.19 else issued + timedelta(days=365)
            revoked = 0.05 <= r1 < 0.07
            rows.append(
                {
                    "org_id": org_id,
                    "id": uuid.uuid4(),
                    "certification_id": cert_ids[i % len(cert_ids)],
                    "subject_type": "employee",
                    "subject_id": uuid.uuid4(),
                    "source": "role",
                    "issued_on": issued,
                    "effective_on": issued,
                    "expires_on": expires,
                    "form_accepted_at": now if r3 < 0.5 else None,
                    "status": "missing",
                    "revoked_at": now if revoked else None,
                    "revoked_reason": "bench" if revoked else None,
                }
            )
        s.execute(insert(A), rows)


def _vacuum() -> None:
    settings = load_settings()
    url = settings.migration_database_url or settings.database_url
    if not url.startswith("postgresql"):
        return
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("VACUUM ANALYZE assignments"))
            conn.execute(text("VACUUM ANALYZE status_events"))
            conn.execute(text("VACUUM ANALYZE webhook_events"))
            conn.execute(text("VACUUM ANALYZE webhook_deliveries"))
    finally:
        engine.dispose()


def _reset(org_id: uuid.UUID) -> None:
    """Back to the day-0 statuses, no events."""
    with context.tenant(org_id), db.new_session() as s:
        recompute_statuses(s, org_id, DAY0)
        s.execute(delete(StatusEvent))  # the session's tenant criteria: this org's rows
        s.execute(delete(WebhookEvent))  # and their webhook events (deliveries cascade)
        s.commit()
    _vacuum()


def run_recompute(org_id: uuid.UUID) -> tuple[float, int]:
    with context.tenant(org_id), db.new_session() as s:
        started = time.perf_counter()
        changed = recompute_statuses(s, org_id, DAY0 + timedelta(days=SHIFT_DAYS))
        s.commit()
        return time.perf_counter() - started, changed


def set_events(org_id: uuid.UUID, on: bool) -> None:
    """Events on: one enabled endpoint subscribed to everything; off: none."""
    with context.tenant(org_id), db.new_session() as s:
        s.execute(delete(WebhookEndpoint))
        if on:
            s.add(
                WebhookEndpoint(
                    url="https://example.com/bench",
                    events=["*"],
                    event_filter="*",
                    secret=SealedSecret.seal("whsec_bench"),
                )
            )
        s.commit()


def run_floor(
    org_id: uuid.UUID, day: date = DAY0 + timedelta(days=SHIFT_DAYS)
) -> tuple[float, int]:
    new = status_case_sql(day, A, C)
    with context.tenant(org_id), db.new_session() as s:
        stmt = tenant_statement(  # the raw floor: Core tables, scoped by hand
            update(A)
            .where(C.c.org_id == A.c.org_id, C.c.id == A.c.certification_id, new != A.c.status)
            .values(status=new, status_changed_at=func.now()),
            A,
            C,
        )
        started = time.perf_counter()
        changed = s.execute(stmt).rowcount  # type: ignore[attr-defined]
        s.commit()
        return time.perf_counter() - started, changed


def run_naive(org_id: uuid.UUID, size: int) -> float:
    """Per-row ORM loop on at most NAIVE_ROWS rows, scaled linearly to `size`."""
    today = DAY0 + timedelta(days=SHIFT_DAYS)
    rows = min(size, NAIVE_ROWS)
    with context.tenant(org_id), db.new_session() as s:
        started = time.perf_counter()
        pairs = s.execute(
            select(Assignment, Certification)
            .join(
                Certification,
                and_(
                    Certification.org_id == Assignment.org_id,
                    Certification.id == Assignment.certification_id,
                ),
            )
            .order_by(Assignment.id)
            .limit(rows)
        ).all()
        now = db.utcnow()
        for a, cert in pairs:
            new = assignment_status(a, cert, today)
            if new != a.status:
                s.add(
                    StatusEvent(
                        assignment_id=a.id,
                        cycle=a.cycle,
                        from_status=a.status,
                        to_status=new,
                        on_date=today,
                        created_at=now,
                    )
                )
                a.status = new
                a.status_changed_at = now
        s.flush()
        s.commit()
        elapsed = time.perf_counter() - started
    return elapsed * size / rows


def _median(
    runs: list[Callable[[], tuple[float, int]]], org_id: uuid.UUID
) -> tuple[list[float], list[float]]:
    """Alternate the runs REPEATS times from the same start state: the median seconds of each,
    and the load average before each round."""
    times: list[list[float]] = [[] for _ in runs]
    loads: list[float] = []
    for _ in range(REPEATS):
        loads.append(load_average())
        for i, run in enumerate(runs):
            _reset(org_id)
            seconds, _changed = run()
            times[i].append(seconds)
    return [statistics.median(t) for t in times], loads


def _floor_without_counts(org_id: uuid.UUID) -> tuple[float, int]:
    with counts_off(org_id):
        return run_floor(org_id)


def main(size: int) -> None:
    # Loading and the untimed day-0 baseline touch every row in one statement.
    os.environ.setdefault("DB_STATEMENT_TIMEOUT_MS", "900000")
    settings = load_settings()
    migrate.upgrade(settings)
    bootstrap(settings)
    started = time.perf_counter()
    org_id, _ = _setup(size)
    run_floor(org_id, DAY0)  # the day-0 statuses as loaded data, without 0.9 N events
    _reset(org_id)
    load = time.perf_counter() - started
    with context.tenant(org_id), db.new_session() as s:
        by_status = dict(
            s.execute(select(Assignment.status, func.count()).group_by(Assignment.status)).all()
        )
    _reset(org_id)
    _, changed = run_recompute(org_id)
    (seconds, floor), loads = _median(
        [lambda: run_recompute(org_id), lambda: _floor_without_counts(org_id)], org_id
    )
    set_events(org_id, True)
    (on_seconds, on_floor), on_loads = _median(
        [lambda: run_recompute(org_id), lambda: _floor_without_counts(org_id)], org_id
    )
    set_events(org_id, False)
    _reset(org_id)
    naive = run_naive(org_id, size)
    result: dict[str, Any] = {
        "scenario": "recompute",
        "size": size,
        "seconds": round(seconds, 3),
        "floor_seconds": round(floor, 3),
        "naive_seconds": round(naive, 3),
        "ratio": round(seconds / floor, 2) if floor else None,
        "changed": changed,
        "events_on_seconds": round(on_seconds, 3),
        "events_on_floor_seconds": round(on_floor, 3),
        "events_on_ratio": round(on_seconds / on_floor, 2) if on_floor else None,
        "load_average": loads,
        "events_on_load_average": on_loads,
    }
    print(f"recompute: loaded {size} assignments in {load:.1f}s; day-0 statuses {by_status}")
    print(
        f"recompute: {changed} of {size} change after {SHIFT_DAYS} days; recompute_statuses "
        f"{seconds:.3f}s (events included) vs one raw UPDATE {floor:.3f}s ({result['ratio']}x); "
        f"naive ORM ~{naive:.1f}s (from {min(size, NAIVE_ROWS)} rows, scaled); "
        f"medians of {REPEATS} alternating rounds, load average {loads}"
    )
    print(
        f"recompute, webhook events on: {on_seconds:.3f}s vs floor {on_floor:.3f}s "
        f"({result['events_on_ratio']}x; events off {result['ratio']}x)"
    )
    print(json.dumps(result))
