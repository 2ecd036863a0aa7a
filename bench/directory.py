"""`python -m bench directory --size N`: bulk upsert of N employees through the API.

The API run posts N employees in 10,000-row requests to `POST /employees/bulk` through the Flask
test client (auth, validation, report and all), then posts them again renamed (the update path).
The floor is a raw `INSERT … ON CONFLICT (org_id, external_id) DO UPDATE` of the same rows into a
second fresh org; naive is a per-row ORM loop (look up by external id, add, flush), measured on
at most `NAIVE_ROWS` rows and scaled linearly. Peak RSS shows the API never holds N objects.
"""

from __future__ import annotations

import json
import resource
import statistics
import time
import uuid
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects import sqlite

from api import create_app
from bench._support import REPEATS, alternate, load_average
from certifications.directory.models import Employee, Role
from infra import context
from infra import database as db
from infra.settings import load_settings
from runtime import bootstrap
from tenancy.auth import issue_token
from tenancy.organizations import create_organization
from tenancy.scoping import tenant_statement

DEFAULT_SIZE = 10_000
BATCH = 10_000
NAIVE_ROWS = 5_000


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _org_with_role(name: str) -> tuple[uuid.UUID, uuid.UUID]:
    with context.platform(), db.new_session() as s:
        org = create_organization(s, name=name, modules=["hse"])
        s.commit()
    with context.tenant(org.id), db.new_session() as s:
        role = Role(name="Technician")
        s.add(role)
        s.commit()
        return org.id, role.id


def _batches(size: int, role_id: uuid.UUID, label: str) -> Iterator[list[dict[str, Any]]]:
    """Rows generated a batch at a time, so the benchmark itself never holds N rows."""
    for start in range(0, size, BATCH):
        yield [
            {
                "external_id": f"emp-{i:07d}",
                "name": f"{label} {i:07d}",
                "email": f"employee{i}@example.com",
                "role_id": str(role_id),
            }
            for i in range(start, min(size, start + BATCH))
        ]


def run_api(size: int) -> dict[str, float]:
    settings = load_settings()
    org_id, role_id = _org_with_role(f"bench directory {uuid.uuid4().hex[:6]}")
    app = create_app(settings)
    token = issue_token(
        settings,
        sub="bench",
        org_id=str(org_id),
        scopes=["directory:read", "directory:write"],
        ttl=3600,
    )
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    timings = {}
    for phase, label, expected in (
        ("create", "Employee", "created"),
        ("update", "Renamed", "updated"),
    ):
        started = time.perf_counter()
        for rows in _batches(size, role_id, label):
            resp = client.post("/api/v1/employees/bulk", json={"items": rows}, headers=headers)
            report = resp.get_json()
            if resp.status_code != 200 or report["counts"][expected] != len(rows):
                raise RuntimeError(f"bulk {phase} failed: {resp.status_code} {str(report)[:500]}")
        timings[phase] = time.perf_counter() - started
    return timings


FLOOR_PG = text(
    """
    INSERT INTO employees (org_id, id, name, email, role_id, external_id, active,
                           created_at, updated_at)
    SELECT :org_id, gen_random_uuid(), u.name, u.email, :role_id, u.external_id, true, now(), now()
    FROM unnest(CAST(:names AS varchar[]), CAST(:emails AS varchar[]),
                CAST(:external_ids AS varchar[])) AS u(name, email, external_id)
    ON CONFLICT (org_id, external_id) DO UPDATE
    SET name = excluded.name, email = excluded.email, role_id = excluded.role_id,
        updated_at = excluded.updated_at
    """
)


def run_floor(size: int) -> float:
    """The same rows straight into the table: one raw upsert per 10k rows, no API, no checks."""
    org_id, role_id = _org_with_role(f"bench floor {uuid.uuid4().hex[:6]}")
    started = time.perf_counter()
    with context.tenant(org_id), db.new_session() as s:
        postgres = s.get_bind().dialect.name == "postgresql"
        for rows in _batches(size, role_id, "Employee"):
            if postgres:
                s.execute(
                    tenant_statement(FLOOR_PG),  # the raw floor writes :org_id's rows only
                    {
                        "org_id": org_id,
                        "role_id": role_id,
                        "names": [r["name"] for r in rows],
                        "emails": [r["email"] for r in rows],
                        "external_ids": [r["external_id"] for r in rows],
                    },
                )
            else:
                _floor_sqlite(s, org_id, role_id, rows)
            s.commit()
    return time.perf_counter() - started


def _floor_sqlite(s: Any, org_id: uuid.UUID, role_id: uuid.UUID, rows: list[dict]) -> None:
    table = Employee.__table__
    stmt = sqlite.insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.org_id, table.c.external_id],
        set_={c: stmt.excluded[c] for c in ("name", "email", "role_id", "updated_at")},
    )
    now = db.utcnow()
    extra = {"org_id": org_id, "role_id": role_id, "active": True}
    extra |= {"created_at": now, "updated_at": now}
    s.execute(stmt, [r | extra | {"id": uuid.uuid4()} for r in rows])


def run_naive(size: int) -> float:
    """A per-row ORM loop over a sample, scaled to `size` rows."""
    sample = min(size, NAIVE_ROWS)
    org_id, role_id = _org_with_role(f"bench naive {uuid.uuid4().hex[:6]}")
    started = time.perf_counter()
    with context.tenant(org_id), db.new_session() as s:
        for rows in _batches(sample, role_id, "Employee"):
            for row in rows:
                found = s.scalar(select(Employee).where(Employee.external_id == row["external_id"]))
                if found is None:
                    s.add(Employee(**(row | {"role_id": role_id})))
                else:
                    found.name, found.email = row["name"], row["email"]
                s.flush()
            s.commit()
    return (time.perf_counter() - started) * size / sample


def main(size: int) -> None:
    settings = load_settings()
    bootstrap(settings)
    rss_start = _rss_mb()
    updates: list[float] = []

    def api() -> float:
        timings = run_api(size)
        updates.append(timings["update"])
        return timings["create"]

    medians = alternate("directory", {"api": api, "floor": lambda: run_floor(size)})
    rss_api = _rss_mb()
    timings = {"create": medians["api"], "update": statistics.median(updates)}
    floor = medians["floor"]
    naive = run_naive(size)
    print(
        f"directory: {size} employees via API create {timings['create']:.2f}s, "
        f"update {timings['update']:.2f}s; raw upsert {floor:.2f}s; "
        f"naive ORM ~{naive:.1f}s (from {min(size, NAIVE_ROWS)} rows); "
        f"peak RSS {rss_start:.0f} -> {rss_api:.0f} MiB during the API runs; medians of "
        f"{REPEATS}, API and floor runs alternating (load {load_average()})"
    )
    print(
        json.dumps(
            {
                "scenario": "directory",
                "size": size,
                "seconds": round(timings["create"], 3),
                "floor_seconds": round(floor, 3),
                "naive_seconds": round(naive, 3),
                "update_seconds": round(timings["update"], 3),
                "peak_rss_mb": round(rss_api, 1),
                "rss_before_mb": round(rss_start, 1),
            }
        )
    )
