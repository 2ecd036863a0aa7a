"""A message that fails for good marks its outbox row `failed` (and is counted as failed)."""

from __future__ import annotations

import time
import uuid

from sqlalchemy import select

from infra import context
from infra import database as db
from jobs.models import OutboxMessage
from jobs.outbox import request_job


def test_final_failure_marks_the_outbox_row_failed(org, as_tenant, jobs) -> None:
    with as_tenant(org.id) as s:
        # record_ping has max_retries=0 and raises for a job it cannot see.
        request_job(s, "record_ping", job_id=str(uuid.uuid4()), marker="never")
        s.commit()
    deadline = time.monotonic() + 30
    while True:
        with context.platform(), db.new_session() as s:
            row = s.scalars(select(OutboxMessage).where(OutboxMessage.org_id == org.id)).one()
        if row.status == "failed":
            break
        assert time.monotonic() < deadline, f"outbox row still {row.status!r}"
        time.sleep(0.1)
    assert "not visible" in (row.last_error or "")
