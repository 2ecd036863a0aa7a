"""`python -m bench fanout --size N`: one certification given to a role of N employees.

Measured from the API request (`PATCH /certifications/{id}` with `role_ids`, through the Flask
test client: auth, validation, commit, outbox relay) to the fan-out job reading `done` (a worker
thread in this process runs the real actor from the broker). Floor: the raw
`INSERT … SELECT … ON CONFLICT DO NOTHING` alone, in one transaction, without the compliance
counts the project's run maintains (`bench._support.counts_off`). Naive: a per-row ORM loop
creating the same rows (look up, add, flush), measured on at most `NAIVE_ROWS` and scaled.
Each figure is the median of `REPEATS` rounds alternating an API run and a floor run (the load
average of each round is printed); the assignments are deleted between runs.
"""

from __future__ import annotations

import json
import os
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import dramatiq
from sqlalchemy import create_engine, delete, insert, select, text

from api import create_app
from bench._support import counts_off, load_average
from certifications.assignments.models import Assignment, StatusEvent
from certifications.catalog.models import Certification, CertificationRole
from certifications.directory.models import Employee, Role
from certifications.history.models import RequirementPeriod
from infra import context
from infra import database as db
from infra.settings import load_settings
from jobs.models import Job
from runtime import bootstrap
from tenancy.auth import issue_token
from tenancy.organizations import create_organization
from tenancy.scoping import tenant_statement

DEFAULT_SIZE = 10_000
REPEATS = 3
NAIVE_ROWS = 5_000
BATCH = 10_000


def _setup(size: int) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """An org with one role of `size` active employees and one unlinked certification."""
    with context.platform(), db.new_session() as s:
        org = create_organization(s, name=f"bench fanout {uuid.uuid4().hex[:6]}", modules=["hse"])
        s.commit()
    with context.tenant(org.id), db.new_session() as s:
        role = Role(name="Technician")
        cert = Certification(
            name="Working at height", type="employee", validity_months=12, warning_days=30
        )
        s.add_all([role, cert])
        s.flush()
        now = db.utcnow()
        for start in range(0, size, BATCH):
            rows = [
                {
                    "org_id": org.id,
                    "id": uuid.uuid4(),
                    "name": f"Employee {i:07d}",
                    "role_id": role.id,
                    "active": True,
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(start, min(size, start + BATCH))
            ]
            s.execute(insert(Employee.__table__), rows)
        s.commit()
        return org.id, role.id, cert.id


def _reset(org_id: uuid.UUID, cert_id: uuid.UUID) -> None:
    with context.tenant(org_id), db.new_session() as s:
        s.execute(delete(StatusEvent))  # the session's tenant criteria: this org's rows
        s.execute(delete(Assignment))
        # Their requirement periods too: a fan-out then closes none left behind by this reset.
        s.execute(delete(RequirementPeriod))
        s.execute(delete(CertificationRole).where(CertificationRole.certification_id == cert_id))
        s.commit()
    _analyze()


def _analyze() -> None:
    """Fresh planner statistics, as autovacuum keeps them (only the table owner may ANALYZE)."""
    settings = load_settings()
    if not settings.is_postgres:
        return
    engine = create_engine(settings.migration_database_url or settings.database_url)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE employees, certification_roles, assignments"))
    engine.dispose()


def _count(org_id: uuid.UUID) -> int:
    from sqlalchemy import func

    with context.tenant(org_id), db.new_session() as s:
        return int(s.scalar(select(func.count()).select_from(Assignment)) or 0)


def run_api(org_id: uuid.UUID, role_id: uuid.UUID, cert_id: uuid.UUID) -> float:
    settings = load_settings()
    app = create_app(settings)
    token = issue_token(
        settings,
        sub="bench",
        org_id=str(org_id),
        scopes=["certifications:read", "certifications:update"],
    )
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    started = time.perf_counter()
    resp = client.patch(
        f"/api/v1/certifications/{cert_id}", json={"role_ids": [str(role_id)]}, headers=headers
    )
    body = resp.get_json()
    if resp.status_code != 200 or not body.get("jobs"):
        raise RuntimeError(f"PATCH failed: {resp.status_code} {str(body)[:500]}")
    job_id = uuid.UUID(body["jobs"][0]["id"])
    while True:
        with context.tenant(org_id), db.new_session() as s:
            state = s.scalar(select(Job.state).where(Job.id == job_id))
        if state in ("done", "failed"):
            break
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    if state != "done":
        raise RuntimeError(f"fan-out job {job_id} {state}")
    return elapsed


def run_floor(org_id: uuid.UUID, role_id: uuid.UUID, cert_id: uuid.UUID) -> float:
    """The raw statement alone: no API, no job, no status events, no removals."""
    with context.tenant(org_id), db.new_session() as s:
        s.add(CertificationRole(certification_id=cert_id, role_id=role_id))
        s.commit()
        dialect = s.get_bind().dialect.name
        new_id = "gen_random_uuid()" if dialect == "postgresql" else "lower(hex(randomblob(16)))"
        now = "now()" if dialect == "postgresql" else "CURRENT_TIMESTAMP"
        ident = (lambda v: str(v)) if dialect == "postgresql" else (lambda v: v.hex)
        sql = tenant_statement(  # the raw floor filters its org by hand (e.org_id = :org)
            text(
                f"INSERT INTO assignments (id, org_id, certification_id, subject_type, subject_id,"
                f" source, required, cycle, status, status_changed_at, created_at, updated_at)"
                f" SELECT {new_id}, e.org_id, :cert, 'employee', e.id, 'role', true, 1, 'missing',"
                f" {now}, {now}, {now} FROM employees e"
                f" WHERE e.org_id = :org AND e.role_id = :role AND e.active"
                f" ON CONFLICT (org_id, certification_id, subject_id) WHERE revoked_at IS NULL"
                f" DO NOTHING"
            )
        )
        params = {"cert": ident(cert_id), "org": ident(org_id), "role": ident(role_id)}
        started = time.perf_counter()
        s.execute(sql, params)
        s.commit()
        return time.perf_counter() - started


def run_naive(org_id: uuid.UUID, role_id: uuid.UUID, cert_id: uuid.UUID, size: int) -> float:
    """Per-row ORM: look each employee's assignment up, add it, flush; scaled to `size`."""
    sample = min(size, NAIVE_ROWS)
    with context.tenant(org_id), db.new_session() as s:
        s.add(CertificationRole(certification_id=cert_id, role_id=role_id))
        s.commit()
        started = time.perf_counter()
        employee_ids = s.scalars(
            select(Employee.id).where(Employee.role_id == role_id, Employee.active).limit(sample)
        ).all()
        now = db.utcnow()
        for emp_id in employee_ids:
            found = s.scalar(
                select(Assignment.id).where(
                    Assignment.certification_id == cert_id,
                    Assignment.subject_id == emp_id,
                    Assignment.revoked_at.is_(None),
                )
            )
            if found is None:
                s.add(
                    Assignment(
                        certification_id=cert_id,
                        subject_type="employee",
                        subject_id=emp_id,
                        source="role",
                        status="missing",
                        created_at=now,
                        updated_at=now,
                    )
                )
                s.flush()
        s.commit()
        return (time.perf_counter() - started) * size / sample


def _then_idle(worker: dramatiq.Worker, seconds: float) -> float:
    """After the timed run: let the work it queued (the org's tick) finish, untimed, so the
    floor run that follows shares the machine and the rows with nothing."""
    worker.join()
    return seconds


def _check(org_id: uuid.UUID, size: int) -> None:
    created = _count(org_id)
    if created != size:
        raise RuntimeError(f"expected {size} assignments, found {created}")


def _medians(
    api: Callable[[], float],
    floor: Callable[[], float],
    org_id: uuid.UUID,
    cert_id: uuid.UUID,
    size: int,
) -> tuple[float, float, list[float]]:
    """REPEATS rounds of one API run then one floor run (alternating, so a swing of the
    machine's load biases neither): both medians and the load average before each round."""
    apis, floors, loads = [], [], []
    for _ in range(REPEATS):
        loads.append(load_average())
        _reset(org_id, cert_id)
        apis.append(api())
        _check(org_id, size)
        _reset(org_id, cert_id)
        with counts_off(org_id):
            floors.append(floor())
        _check(org_id, size)
    return statistics.median(apis), statistics.median(floors), loads


def main(size: int) -> None:
    os.environ.setdefault("DB_STATEMENT_TIMEOUT_MS", "900000")  # a loaded machine's floor
    settings = load_settings()
    runtime = bootstrap(settings)
    from workers.actors import register_actors

    register_actors(runtime.broker, settings)  # the fan-out actor, run by a worker thread here

    org_id, role_id, cert_id = _setup(size)
    worker = dramatiq.Worker(runtime.broker, worker_threads=1)
    worker.start()
    try:
        seconds, floor, loads = _medians(
            lambda: _then_idle(worker, run_api(org_id, role_id, cert_id)),
            lambda: run_floor(org_id, role_id, cert_id),
            org_id,
            cert_id,
            size,
        )
    finally:
        worker.stop()
    _reset(org_id, cert_id)
    naive = run_naive(org_id, role_id, cert_id, size)
    _reset(org_id, cert_id)
    result: dict[str, Any] = {
        "scenario": "fanout",
        "size": size,
        "seconds": round(seconds, 3),
        "floor_seconds": round(floor, 3),
        "naive_seconds": round(naive, 3),
        "ratio": round(seconds / floor, 2) if floor else None,
        "load_average": loads,
    }
    print(
        f"fanout: {size} employees, API request to job done {seconds:.3f}s; raw INSERT … SELECT "
        f"{floor:.3f}s ({result['ratio']}x); naive ORM ~{naive:.1f}s "
        f"(from {min(size, NAIVE_ROWS)} rows); medians of {REPEATS} alternating rounds, "
        f"load average {loads}"
    )
    print(json.dumps(result))
