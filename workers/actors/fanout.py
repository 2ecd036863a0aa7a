"""Role fan-out actors: the directory and the catalog ask for these through the outbox."""

from __future__ import annotations

import uuid

import dramatiq

from certifications.assignments import fanout

# Fan-out is idempotent, so a retry (or a duplicate delivery) is always safe.
MAX_RETRIES = 5


@dramatiq.actor(queue_name="default", max_retries=MAX_RETRIES)
def fanout_certification(org_id: str, certification_id: str, job_id: str | None = None) -> None:
    """Create/retire role assignments of one certification after its roles changed."""
    fanout.run_certification_fanout(uuid.UUID(org_id), uuid.UUID(certification_id), job_id)


@dramatiq.actor(queue_name="default", max_retries=MAX_RETRIES)
def fanout_employees(org_id: str, employee_ids: list[str], job_id: str | None = None) -> None:
    """Create/retire role assignments of employees who joined, left or changed a role."""
    ids = [uuid.UUID(e) for e in employee_ids]
    fanout.run_employee_fanout(uuid.UUID(org_id), ids, job_id)
