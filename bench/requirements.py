"""`python -m bench requirements --size N`: a site requirement across rosters, and the gate check.

N employees (default 100,000), 500 job sites, 20,000 roster rows (a tenth of them already ended);
one employee certification becomes required at 100 sites (`PATCH /certifications/{id}` with
`location_ids`). Measured from the API request (Flask test client: auth, validation, commit, outbox
relay) to the fan-out job reading `done` (a worker thread in this process runs the real actor).
Floor: the raw `INSERT … SELECT DISTINCT … ON CONFLICT DO NOTHING` of the same rows alone, in one
transaction. Each figure is the median of `REPEATS` runs, the three kinds alternating
(`bench._support.alternate`); the assignments are deleted between runs. Then the gate check:
`GATE_CALLS` requests `GET /compliance/check?employee_id=…&location_id=…` for random roster members
(p50/p95 through the test client, and of the one query alone), and the same checks for a day 30
days ago (from history: two statements).
"""

from __future__ import annotations

import json
import random
import statistics
import time
import uuid
from datetime import timedelta
from typing import Any

import dramatiq
from sqlalchemy import create_engine, delete, func, insert, select, text

from api import create_app
from bench._support import alternate
from certifications.assignments.models import Assignment, StatusEvent
from certifications.catalog.models import Certification, CertificationLocation
from certifications.directory.models import Employee, Location, Membership
from certifications.history.asof import AsOf
from certifications.reporting.gate import gate_check
from infra import context
from infra import database as db
from infra.settings import load_settings
from jobs.models import Job
from runtime import bootstrap
from tenancy.auth import issue_token
from tenancy.organizations import create_organization, org_today
from tenancy.scoping import tenant_statement

DEFAULT_SIZE = 100_000
SITES = 500
ROSTER_ROWS = 20_000
REQUIRED_AT = 100
REPEATS = 3
GATE_CALLS = 300
BATCH = 10_000


def _setup(size: int) -> dict[str, Any]:
    rng = random.Random(15)
    with context.platform(), db.new_session() as s:
        org = create_organization(s, name=f"bench req {uuid.uuid4().hex[:6]}", modules=["hse"])
        s.commit()
    today = org_today("UTC", db.utcnow())
    with context.tenant(org.id), db.new_session() as s:
        cert = Certification(
            name="Site induction", type="employee", validity_months=12, warning_days=30
        )
        s.add(cert)
        s.flush()
        now = db.utcnow()
        employees = [uuid.uuid4() for _ in range(size)]
        for start in range(0, size, BATCH):
            rows = [
                {
                    "org_id": org.id,
                    "id": e,
                    "name": f"Employee {i:07d}",
                    "active": True,
                    "created_at": now,
                    "updated_at": now,
                }
                for i, e in enumerate(employees[start : start + BATCH], start)
            ]
            s.execute(insert(Employee.__table__), rows)
        sites = [uuid.uuid4() for _ in range(SITES)]
        s.execute(
            insert(Location.__table__),
            [
                {"org_id": org.id, "id": x, "name": f"Site {i:03d}", "active": True}
                for i, x in enumerate(sites)
            ],
        )
        roster = []
        for i in range(ROSTER_ROWS):
            ended = i % 10 == 0
            roster.append(
                {
                    "org_id": org.id,
                    "id": uuid.uuid4(),
                    "employee_id": rng.choice(employees),
                    "location_id": rng.choice(sites),
                    "starts_on": today - timedelta(days=90),
                    "ends_on": today - timedelta(days=1) if ended else None,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        for start in range(0, len(roster), BATCH):
            s.execute(insert(Membership.__table__), roster[start : start + BATCH])
        s.commit()
    current = [(r["employee_id"], r["location_id"]) for r in roster if r["ends_on"] is None]
    required = sites[:REQUIRED_AT]
    expected = len({e for e, x in current if x in set(required)})
    return {
        "org_id": org.id,
        "cert_id": cert.id,
        "required": required,
        "expected": expected,
        "members": current,
        "today": today,
    }


def _reset(world: dict[str, Any]) -> None:
    with context.tenant(world["org_id"]), db.new_session() as s:
        s.execute(delete(StatusEvent))
        s.execute(delete(Assignment))
        s.execute(
            delete(CertificationLocation).where(
                CertificationLocation.certification_id == world["cert_id"]
            )
        )
        s.commit()
    _analyze()


def _analyze() -> None:
    settings = load_settings()
    if not settings.is_postgres:
        return
    engine = create_engine(settings.migration_database_url or settings.database_url)
    with engine.begin() as conn:
        conn.execute(
            text("ANALYZE employees, memberships, certification_locations, assignments, locations")
        )
    engine.dispose()


def _count(org_id: uuid.UUID) -> int:
    with context.tenant(org_id), db.new_session() as s:
        return int(s.scalar(select(func.count()).select_from(Assignment)) or 0)


def _client(org_id: uuid.UUID) -> tuple[Any, dict[str, str]]:
    settings = load_settings()
    app = create_app(settings)
    token = issue_token(
        settings,
        sub="bench",
        org_id=str(org_id),
        scopes=["certifications:read", "certifications:update"],
    )
    return app.test_client(), {"Authorization": f"Bearer {token}"}


def run_api(world: dict[str, Any]) -> float:
    client, headers = _client(world["org_id"])
    started = time.perf_counter()
    body = {"location_ids": [str(x) for x in world["required"]]}
    resp = client.patch(f"/api/v1/certifications/{world['cert_id']}", json=body, headers=headers)
    answer = resp.get_json()
    if resp.status_code != 200 or not answer.get("jobs"):
        raise RuntimeError(f"PATCH failed: {resp.status_code} {str(answer)[:500]}")
    job_id = uuid.UUID(answer["jobs"][0]["id"])
    world.setdefault("request_seconds", []).append(time.perf_counter() - started)
    while True:
        with context.tenant(world["org_id"]), db.new_session() as s:
            state = s.scalar(select(Job.state).where(Job.id == job_id))
        if state in ("done", "failed"):
            break
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    if state != "done":
        raise RuntimeError(f"fan-out job {job_id} {state}")
    return elapsed


def run_floor(world: dict[str, Any]) -> float:
    """The raw statement alone: no API, no job, no retirement, no other sources."""
    org_id, cert_id = world["org_id"], world["cert_id"]
    with context.tenant(org_id), db.new_session() as s:
        s.execute(
            insert(CertificationLocation),
            [
                {"org_id": org_id, "certification_id": cert_id, "location_id": x}
                for x in world["required"]
            ],
        )
        s.commit()
        dialect = s.get_bind().dialect.name
        new_id = "gen_random_uuid()" if dialect == "postgresql" else "lower(hex(randomblob(16)))"
        now = "now()" if dialect == "postgresql" else "CURRENT_TIMESTAMP"
        ident = (lambda v: str(v)) if dialect == "postgresql" else (lambda v: v.hex)
        sql = tenant_statement(
            text(
                f"INSERT INTO assignments (id, org_id, certification_id, subject_type, subject_id,"
                f" source, required, cycle, status, status_changed_at, created_at, updated_at)"
                f" SELECT {new_id}, :org, :cert, 'employee', p.employee_id, 'role', true, 1,"
                f" 'missing', {now}, {now}, {now} FROM ("
                f"  SELECT DISTINCT m.employee_id FROM memberships m"
                f"  JOIN certification_locations cl ON cl.org_id = m.org_id"
                f"   AND cl.location_id = m.location_id AND cl.certification_id = :cert"
                f"  JOIN employees e ON e.org_id = m.org_id AND e.id = m.employee_id AND e.active"
                f"  WHERE m.org_id = :org AND (m.starts_on IS NULL OR m.starts_on <= :today)"
                f"   AND (m.ends_on IS NULL OR m.ends_on >= :today)) p WHERE true"
                f" ON CONFLICT (org_id, certification_id, subject_id) WHERE revoked_at IS NULL"
                f" DO NOTHING"
            )
        )
        params = {"cert": ident(cert_id), "org": ident(org_id), "today": world["today"]}
        started = time.perf_counter()
        s.execute(sql, params)
        s.commit()
        return time.perf_counter() - started


def run_domain(world: dict[str, Any]) -> float:
    """The fan-out itself (retire + insert over every source), in one transaction: no API, no
    job, no relay."""
    from certifications.assignments import fanout

    org_id, cert_id = world["org_id"], world["cert_id"]
    with context.tenant(org_id), db.new_session() as s:
        s.execute(
            insert(CertificationLocation),
            [
                {"org_id": org_id, "certification_id": cert_id, "location_id": x}
                for x in world["required"]
            ],
        )
        s.commit()
        started = time.perf_counter()
        fanout.fanout_certification(s, org_id, cert_id, today=world["today"], now=db.utcnow())
        s.commit()
        return time.perf_counter() - started


def _checked(fn: Any, world: dict[str, Any]) -> Any:
    """`fn(world)`, failing unless it created the expected assignments."""

    def run() -> float:
        seconds: float = fn(world)
        created = _count(world["org_id"])
        if created != world["expected"]:
            raise RuntimeError(f"expected {world['expected']} assignments, found {created}")
        return seconds

    return run


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run_gate(world: dict[str, Any]) -> dict[str, float]:
    """p50/p95 (ms) of GATE_CALLS gate checks, through the API and of the query alone."""
    rng = random.Random(20)
    calls = [rng.choice(world["members"]) for _ in range(GATE_CALLS)]
    client, headers = _client(world["org_id"])
    api_ms, query_ms = [], []
    for employee, site in calls:
        started = time.perf_counter()
        resp = client.get(
            f"/api/v1/compliance/check?employee_id={employee}&location_id={site}", headers=headers
        )
        api_ms.append((time.perf_counter() - started) * 1000)
        if resp.status_code != 200:
            raise RuntimeError(f"gate check {resp.status_code} {resp.get_data(as_text=True)}")
    past_day = world["today"] - timedelta(days=30)
    past, past_ms = AsOf.of("UTC", past_day), []
    with context.tenant(world["org_id"]), db.new_session() as s:
        for employee, site in calls:
            started = time.perf_counter()
            gate_check(s, world["org_id"], "employee", employee, site, world["today"])
            query_ms.append((time.perf_counter() - started) * 1000)
        for employee, site in calls:
            started = time.perf_counter()
            gate_check(s, world["org_id"], "employee", employee, site, past_day, past)
            past_ms.append((time.perf_counter() - started) * 1000)
    return {
        "gate_api_p50_ms": round(_percentile(api_ms, 0.5), 2),
        "gate_api_p95_ms": round(_percentile(api_ms, 0.95), 2),
        "gate_query_p50_ms": round(_percentile(query_ms, 0.5), 2),
        "gate_query_p95_ms": round(_percentile(query_ms, 0.95), 2),
        # A past day (`on=`): the day's history of the subject, then the sources (2 statements).
        "gate_past_p50_ms": round(_percentile(past_ms, 0.5), 2),
        "gate_past_p95_ms": round(_percentile(past_ms, 0.95), 2),
    }


def main(size: int) -> None:
    settings = load_settings()
    runtime = bootstrap(settings)
    from workers.actors import register_actors

    register_actors(runtime.broker, settings)
    world = _setup(size)
    worker = dramatiq.Worker(runtime.broker, worker_threads=1)
    worker.start()
    try:  # API, fan-out alone and floor runs alternate (the worker idles outside API runs)
        medians = alternate(
            "requirements",
            {
                "api": _checked(run_api, world),
                "fanout": _checked(run_domain, world),
                "floor": _checked(run_floor, world),
            },
            repeats=REPEATS,
            before=lambda: _reset(world),
        )
    finally:
        worker.stop()
    seconds, domain, floor = medians["api"], medians["fanout"], medians["floor"]
    gate = run_gate(world)  # with the site requirement in place (every run adds it)
    _reset(world)
    result: dict[str, Any] = {
        "scenario": "requirements",
        "size": size,
        "sites": SITES,
        "roster_rows": ROSTER_ROWS,
        "required_at": REQUIRED_AT,
        "rows": world["expected"],
        "seconds": round(seconds, 3),
        "request_seconds": round(statistics.median(world["request_seconds"]), 3),
        "fanout_seconds": round(domain, 3),
        "floor_seconds": round(floor, 3),
        "ratio": round(seconds / floor, 2) if floor else None,
        "fanout_ratio": round(domain / floor, 2) if floor else None,
        **gate,
    }
    print(
        f"requirements: {size} employees, {ROSTER_ROWS} roster rows, certification required at "
        f"{REQUIRED_AT}/{SITES} sites → {world['expected']} assignments: API request to job "
        f"done {seconds:.3f}s; the fan-out alone {domain:.3f}s ({result['fanout_ratio']}x); raw "
        f"INSERT … SELECT {floor:.3f}s (API {result['ratio']}x); gate "
        f"check p95 {gate['gate_api_p95_ms']} ms (query alone {gate['gate_query_p95_ms']} ms; a "
        f"past day {gate['gate_past_p95_ms']} ms)"
    )
    print(json.dumps(result))
