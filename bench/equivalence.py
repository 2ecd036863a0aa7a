"""`python -m bench equivalence --size N`: the cost of adding one equivalence on N employees.

N subjects hold OSHA 10 (20% with a valid record of their own, the rest missing); half of them
also hold OSHA 30 (90% of those valid, 10% expired). The timed change is what
`PATCH /certifications/{osha10} {"satisfied_by": [osha30]}` does: insert the link, then the
`recompute` job's work (`recompute_certification`: the equivalence-aware statement over OSHA
10's assignments, status events included). About 0.8 × 0.5 × 0.9 = 36% of the rows change
(missing → valid via OSHA 30).

* seconds: link + `recompute_certification` (what the request and its job do), committed.
* floor: one raw `UPDATE assignments d … FROM assignments p` setting `status` and
  `satisfied_via_id` from the providers' *stored* status (no rule evaluation, no ranking,
  no events, no chunks): the least any implementation must write.

Between timed runs the link is removed and OSHA 10's statuses recomputed back (untimed), the
events deleted, and PostgreSQL vacuumed when the owner URL is known. Medians of `REPEATS`,
the two runs alternating.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from sqlalchemy import create_engine, delete, func, insert, select, text

from bench._support import alternate
from certifications.assignments.models import Assignment, StatusEvent
from certifications.assignments.recompute import recompute_certification, recompute_statuses
from certifications.catalog.models import Certification, CertificationEquivalence
from infra import context, migrate
from infra import database as db
from infra.settings import load_settings
from runtime import bootstrap
from tenancy.organizations import create_organization, org_today_for
from tenancy.scoping import tenant_statement

DEFAULT_SIZE = 100_000
REPEATS = 3
BATCH = 10_000
A = Assignment.__table__

PG_LOAD_OSHA10 = """
INSERT INTO assignments (org_id, id, certification_id, subject_type, subject_id, source,
    required, cycle, issued_on, effective_on, expires_on, expires_explicit, status,
    status_changed_at, created_at, updated_at)
SELECT :org, gen_random_uuid(), :cert, 'employee', gen_random_uuid(), 'role', true, 1,
    x.issued, x.issued, x.issued + 365, false, 'missing', now(), now(), now()
FROM generate_series(1, :n) AS g,
LATERAL (SELECT CASE WHEN random() < 0.2 THEN CAST(:today AS date) - 30 END AS issued
         WHERE g IS NOT NULL) AS x
"""
PG_LOAD_OSHA30 = """
INSERT INTO assignments (org_id, id, certification_id, subject_type, subject_id, source,
    required, cycle, issued_on, effective_on, expires_on, expires_explicit, status,
    status_changed_at, created_at, updated_at)
SELECT :org, gen_random_uuid(), :cert, 'employee', a.subject_id, 'role', true, 1,
    x.issued, x.issued, x.issued + 365, false, 'missing', now(), now(), now()
FROM assignments AS a,
LATERAL (SELECT CASE WHEN random() < 0.9 THEN CAST(:today AS date) - 30
                     ELSE CAST(:today AS date) - 400 END AS issued
         WHERE a.id IS NOT NULL) AS x
WHERE a.org_id = :org AND a.certification_id = :osha10 AND random() < 0.5
"""


def _setup(size: int) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    with context.platform(), db.new_session() as s:
        org = create_organization(
            s, name=f"bench equivalence {uuid.uuid4().hex[:6]}", modules=["hse"]
        )
        s.commit()
    with context.tenant(org.id), db.new_session() as s:
        osha10 = Certification(name="OSHA 10", type="employee", validity_months=12)
        osha30 = Certification(name="OSHA 30", type="employee", validity_months=12)
        s.add_all([osha10, osha30])
        s.flush()
        today = _today(s, org.id)
        if s.get_bind().dialect.name == "postgresql":
            common = {"org": org.id, "today": today}  # both write (and read) :org's rows only
            s.execute(
                tenant_statement(text(PG_LOAD_OSHA10)), common | {"cert": osha10.id, "n": size}
            )
            s.execute(
                tenant_statement(text(PG_LOAD_OSHA30)),
                common | {"cert": osha30.id, "osha10": osha10.id},
            )
        else:
            _load_python(s, org.id, osha10.id, osha30.id, size, today)
        ids = (osha10.id, osha30.id)
        s.commit()
    with context.tenant(org.id), db.new_session() as s:  # every stored status right
        recompute_statuses(s, org.id, today, chunk_rows=0)
        s.execute(delete(StatusEvent))
        s.commit()
    return org.id, *ids


def _today(s: Any, org_id: uuid.UUID) -> date:
    return org_today_for(s, org_id, db.utcnow())


def _load_python(
    s: Any, org_id: uuid.UUID, osha10: uuid.UUID, osha30: uuid.UUID, size: int, today: date
) -> None:
    rnd = random.Random(42)
    rows: list[dict[str, Any]] = []
    for _ in range(size):
        subject, r1, r2 = uuid.uuid4(), rnd.random(), rnd.random()
        own = today - timedelta(days=30) if r1 < 0.2 else None
        rows.append(_row(org_id, osha10, subject, own))
        if r1 >= 0.5:
            issued = today - timedelta(days=30 if r2 < 0.9 else 400)
            rows.append(_row(org_id, osha30, subject, issued))
        if len(rows) >= BATCH:
            s.execute(insert(A), rows)
            rows = []
    if rows:
        s.execute(insert(A), rows)


def _row(org_id: uuid.UUID, cert: uuid.UUID, subject: uuid.UUID, issued: date | None) -> dict:
    return {
        "org_id": org_id,
        "id": uuid.uuid4(),
        "certification_id": cert,
        "subject_type": "employee",
        "subject_id": subject,
        "source": "role",
        "issued_on": issued,
        "effective_on": issued,
        "expires_on": issued + timedelta(days=365) if issued else None,
        "status": "missing",
    }


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
    finally:
        engine.dispose()


def _reset(org_id: uuid.UUID, osha10: uuid.UUID) -> None:
    """No link, OSHA 10's own statuses, no events."""
    with context.tenant(org_id), db.new_session() as s:
        s.execute(delete(CertificationEquivalence))
        recompute_certification(s, org_id, osha10, db.utcnow())
        s.execute(delete(StatusEvent))
        s.commit()
    _vacuum()


def run_equivalence(org_id: uuid.UUID, osha10: uuid.UUID, osha30: uuid.UUID) -> tuple[float, int]:
    with context.tenant(org_id), db.new_session() as s:
        started = time.perf_counter()
        s.add(CertificationEquivalence(certification_id=osha10, provider_id=osha30))
        s.flush()
        report = recompute_certification(s, org_id, osha10, db.utcnow())
        s.commit()
        return time.perf_counter() - started, report["changed"]


def run_floor(org_id: uuid.UUID, osha10: uuid.UUID, osha30: uuid.UUID) -> tuple[float, int]:
    p = A.alias("p")
    with context.tenant(org_id), db.new_session() as s:
        stmt = tenant_statement(  # the raw floor: Core tables, scoped by hand
            A.update()
            .where(
                A.c.certification_id == osha10,
                A.c.status == "missing",
                A.c.revoked_at.is_(None),
                p.c.org_id == A.c.org_id,
                p.c.certification_id == osha30,
                p.c.subject_id == A.c.subject_id,
                p.c.revoked_at.is_(None),
                p.c.status.in_(("valid", "expires_soon")),
            )
            .values(status=p.c.status, satisfied_via_id=p.c.id, status_changed_at=func.now()),
            A,
            p,
        )
        started = time.perf_counter()
        changed = s.execute(stmt).rowcount  # type: ignore[attr-defined]
        s.commit()
        return time.perf_counter() - started, changed


def _median(runs: list[Callable[[], tuple[float, int]]], reset: Callable[[], None]) -> list[float]:
    names = ["equivalence", "floor"]
    medians = alternate(
        "equivalence",
        {name: (lambda run=run: run()[0]) for name, run in zip(names, runs, strict=True)},
        repeats=REPEATS,
        before=reset,
    )
    return [medians[name] for name in names]


def main(size: int) -> None:
    os.environ.setdefault("DB_STATEMENT_TIMEOUT_MS", "900000")
    settings = load_settings()
    migrate.upgrade(settings)
    bootstrap(settings)
    started = time.perf_counter()
    org_id, osha10, osha30 = _setup(size)
    load = time.perf_counter() - started
    _reset(org_id, osha10)
    _, changed = run_equivalence(org_id, osha10, osha30)
    with context.tenant(org_id), db.new_session() as s:
        by_status = dict(
            s.execute(
                select(Assignment.status, func.count())
                .where(Assignment.certification_id == osha10)
                .group_by(Assignment.status)
            ).all()
        )
        via = s.scalar(
            select(func.count()).where(
                Assignment.certification_id == osha10, Assignment.satisfied_via_id.is_not(None)
            )
        )
    seconds, floor = _median(
        [
            lambda: run_equivalence(org_id, osha10, osha30),
            lambda: run_floor(org_id, osha10, osha30),
        ],
        lambda: _reset(org_id, osha10),
    )
    result: dict[str, Any] = {
        "scenario": "equivalence",
        "size": size,
        "seconds": round(seconds, 3),
        "floor_seconds": round(floor, 3),
        "ratio": round(seconds / floor, 2) if floor else None,
        "changed": changed,
    }
    print(f"equivalence: loaded {size} OSHA 10 holders in {load:.1f}s; after the link {by_status}")
    print(
        f"equivalence: {changed} of {size} OSHA 10 assignments change ({via} via OSHA 30); "
        f"link + recompute {seconds:.3f}s (events included) vs one raw UPDATE … FROM "
        f"{floor:.3f}s ({result['ratio']}x); medians of {REPEATS}"
    )
    print(json.dumps(result))
