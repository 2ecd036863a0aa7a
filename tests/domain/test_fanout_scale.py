"""Fan-out at scale on PostgreSQL: linear plans even on fresh, never-analyzed tables.

Regression: a per-employee `NOT EXISTS` probe for revoked pairs became a quadratic nested loop
over dead index entries after a bulk delete, and hit the 30 s statement timeout at 100k.
"""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import delete, func, insert, select

from certifications.assignments import fanout
from certifications.assignments.models import Assignment
from certifications.directory.models import Employee
from infra import context
from infra import database as db
from infra.database import utcnow

SIZE = 50_000


@pytest.mark.postgres
@pytest.mark.slow
def test_fanout_after_bulk_delete_stays_linear(org, as_tenant, make_role, make_certification):
    role = make_role(org)
    cert = make_certification(org, role_ids=[role.id])
    now = utcnow()
    rows = [
        {"org_id": org.id, "id": uuid.uuid4(), "name": f"E{i}", "role_id": role.id,
         "active": True, "created_at": now, "updated_at": now}
        for i in range(SIZE)
    ]  # fmt: skip
    with as_tenant(org.id) as s:
        s.execute(insert(Employee.__table__), rows)
        s.commit()

    def run() -> float:
        started = time.perf_counter()
        with context.tenant(org.id), db.new_session() as s:
            fanout.fanout_certification(s, org.id, cert.id, today=now.date(), now=utcnow())
            s.commit()
        return time.perf_counter() - started

    run()
    with as_tenant(org.id) as s:  # leave dead tuples behind, as a re-import would
        s.execute(delete(Assignment.__table__).where(Assignment.org_id == org.id))
        s.commit()
    elapsed = run()
    with as_tenant(org.id) as s:
        assert s.scalar(select(func.count()).select_from(Assignment)) == SIZE
    assert elapsed < 25, f"fan-out of {SIZE} took {elapsed:.1f}s"
