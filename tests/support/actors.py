"""Actors that exist only for tests of the job plumbing (loaded by the test worker too)."""

from __future__ import annotations

import uuid

import dramatiq

import workers.broker  # noqa: F401 - broker first
from infra import database as db
from jobs.models import Job


@dramatiq.actor(queue_name="default", max_retries=0)
def record_ping(org_id: str, job_id: str, marker: str) -> None:
    """Mark the job done with the marker, as the org from the message (proves tenant context)."""
    with db.new_session() as session:
        job = session.get(Job, uuid.UUID(job_id))
        if job is None:  # another org's job is invisible: that would be a tenant bug
            raise RuntimeError(f"job {job_id} not visible for org {org_id}")
        job.state = "done"
        job.result = {"marker": marker, "org_id": org_id}
        session.commit()
