"""`python -m bench bulk_renew --size N`: renew the certification of N role members in bulk.

N employees each hold one valid assignment. Measured: `POST /assignments/bulk` with
`{"action": "renew", ...}` through the Flask test client (auth, validation, the locked read of
the live assignments, the per-subject report, commit), 10,000 subjects per request (the
endpoint's limit) until all N are renewed. Floor: the same three writes as raw SQL in one
transaction per 10,000 — close the current cycles into `assignment_cycles`, record the status
events, start the new cycles — without the API, the lock, the planning or the report. Each
figure is the median of `REPEATS` runs; every run renews to new dates (a new cycle each time).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from sqlalchemy import create_engine, insert, text

from api import create_app
from bench._support import alternate
from certifications.assignments.models import Assignment
from certifications.catalog.models import Certification
from certifications.directory.models import Employee, Role
from infra import context
from infra import database as db
from infra.settings import load_settings
from runtime import bootstrap
from tenancy.auth import issue_token
from tenancy.organizations import create_organization

DEFAULT_SIZE = 10_000
REPEATS = 3
PER_REQUEST = 10_000
ISSUED = date(2025, 1, 6)


def _setup(size: int) -> tuple[uuid.UUID, uuid.UUID, list[uuid.UUID]]:
    """An org with a role of `size` employees, each holding the certification (cycle 1)."""
    with context.platform(), db.new_session() as s:
        org = create_organization(s, name=f"bench renew {uuid.uuid4().hex[:6]}", modules=["hse"])
        s.commit()
    ids = [uuid.uuid4() for _ in range(size)]
    with context.tenant(org.id), db.new_session() as s:
        role = Role(name="Rigger")
        cert = Certification(name="Rigging", type="employee", validity_months=12, warning_days=30)
        s.add_all([role, cert])
        s.flush()
        now = db.utcnow()
        for start in range(0, size, PER_REQUEST):
            chunk = ids[start : start + PER_REQUEST]
            s.execute(
                insert(Employee.__table__),
                [
                    {
                        "org_id": org.id,
                        "id": i,
                        "name": f"Employee {start + k:07d}",
                        "role_id": role.id,
                        "active": True,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for k, i in enumerate(chunk)
                ],
            )
            s.execute(
                insert(Assignment.__table__),
                [
                    {
                        "org_id": org.id,
                        "id": uuid.uuid4(),
                        "certification_id": cert.id,
                        "subject_type": "employee",
                        "subject_id": i,
                        "source": "role",
                        "required": True,
                        "cycle": 1,
                        "issued_on": ISSUED,
                        "effective_on": ISSUED,
                        "expires_on": ISSUED + timedelta(days=365),
                        "expires_explicit": False,
                        "status": "valid",
                        "status_changed_at": now,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in chunk
                ],
            )
        s.commit()
    _analyze()
    return org.id, cert.id, ids


def _analyze() -> None:
    """Fresh planner statistics, as autovacuum keeps them (only the table owner may ANALYZE)."""
    settings = load_settings()
    if not settings.is_postgres:
        return
    engine = create_engine(settings.migration_database_url or settings.database_url)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE employees, assignments, assignment_cycles, status_events"))
    engine.dispose()


def run_api(org_id: uuid.UUID, cert_id: uuid.UUID, ids: list[uuid.UUID], issued: date) -> float:
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
    for start in range(0, len(ids), PER_REQUEST):
        body: dict[str, Any] = {
            "action": "renew",
            "certification_id": str(cert_id),
            "subject_type": "employee",
            "subject_ids": [str(i) for i in ids[start : start + PER_REQUEST]],
            "issued_on": issued.isoformat(),
        }
        resp = client.post("/api/v1/assignments/bulk", json=body, headers=headers)
        report = resp.get_json()
        if resp.status_code != 200 or report["counts"]["renewed"] != len(body["subject_ids"]):
            raise RuntimeError(f"bulk renew failed: {resp.status_code} {str(report)[:500]}")
    return time.perf_counter() - started


FLOOR_SQL = {
    "cycles": (
        "INSERT INTO assignment_cycles (id, org_id, assignment_id, cycle, issued_on,"
        " effective_on, expires_on, notes, recorded_by, created_at, closed_at)"
        " SELECT gen_random_uuid(), org_id, id, cycle, issued_on, effective_on, expires_on,"
        " notes, cycle_recorded_by, updated_at, now() FROM assignments"
        " WHERE org_id = :org AND id = ANY(:ids)"
    ),
    "events": (
        "INSERT INTO status_events (id, org_id, assignment_id, cycle, from_status, to_status,"
        " on_date, created_at) SELECT gen_random_uuid(), org_id, id, cycle + 1, status,"
        " 'valid', CURRENT_DATE, now() FROM assignments WHERE org_id = :org AND id = ANY(:ids)"
    ),
    "renew": (
        "UPDATE assignments SET cycle = cycle + 1, issued_on = :issued, effective_on = :issued,"
        " expires_on = :expires, status = 'valid', updated_at = now()"
        " WHERE org_id = :org AND id = ANY(:ids)"
    ),
}


def run_floor(org_id: uuid.UUID, cert_id: uuid.UUID, issued: date) -> float:
    """The three raw statements, per 10,000 assignments, as the app role under RLS."""
    with context.tenant(org_id), db.new_session() as s:
        ids = (
            s.execute(
                text(
                    "SELECT id FROM assignments WHERE org_id = :org AND certification_id = :cert"
                    " AND revoked_at IS NULL ORDER BY id"
                ),
                {"org": org_id, "cert": cert_id},
            )
            .scalars()
            .all()
        )
        started = time.perf_counter()
        for start in range(0, len(ids), PER_REQUEST):
            params = {
                "org": org_id,
                "ids": list(ids[start : start + PER_REQUEST]),
                "issued": issued,
                "expires": issued + timedelta(days=365),
            }
            for sql in FLOOR_SQL.values():
                s.execute(text(sql), params)
            s.commit()
        return time.perf_counter() - started


def main(size: int) -> None:
    settings = load_settings()
    if not settings.is_postgres:
        raise SystemExit("bulk_renew measures PostgreSQL (its floor is PostgreSQL SQL)")
    bootstrap(settings)
    org_id, cert_id, ids = _setup(size)
    api_runs: list[float] = []
    floor_runs: list[float] = []
    issued = [ISSUED]

    def renew(run: Callable[[date], float], runs: list[float]) -> float:
        issued[0] += timedelta(days=7)  # every run renews to new dates (a new cycle)
        seconds = run(issued[0])
        runs.append(seconds)
        return seconds

    medians = alternate(
        "bulk_renew",
        {
            "api": lambda: renew(lambda on: run_api(org_id, cert_id, ids, on), api_runs),
            "floor": lambda: renew(lambda on: run_floor(org_id, cert_id, on), floor_runs),
        },
        repeats=REPEATS,
        before=_analyze,
    )
    seconds, floor = medians["api"], medians["floor"]
    result = {
        "scenario": "bulk_renew",
        "size": size,
        "requests": -(-size // PER_REQUEST),
        "seconds": round(seconds, 3),
        "floor_seconds": round(floor, 3),
        "ratio": round(seconds / floor, 2) if floor else None,
        "api_runs": [round(r, 3) for r in api_runs],
        "floor_runs": [round(r, 3) for r in floor_runs],
    }
    print(
        f"bulk_renew: {size} role members in {result['requests']} request(s) {seconds:.3f}s; "
        f"raw SQL floor {floor:.3f}s ({result['ratio']}x); medians of {REPEATS}"
    )
    print(json.dumps(result))
