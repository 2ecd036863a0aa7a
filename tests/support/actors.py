"""Actors that exist only for tests of the job plumbing (declared on the test worker too)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from infra import database as db
from infra.settings import load_settings
from jobs import catalog
from jobs.models import Job
from runtime import bootstrap
from workers.actors import register_actors


def record_ping(org_id: str, job_id: str, marker: str) -> None:
    """Mark the job done with the marker, as the org from the message (proves tenant context)."""
    with db.new_session() as session:
        job = session.get(Job, uuid.UUID(job_id))
        if job is None:  # another org's job is invisible: that would be a tenant bug
            raise RuntimeError(f"job {job_id} not visible for org {org_id}")
        job.state = "done"
        job.result = {"marker": marker, "org_id": org_id}
        session.commit()


def failing_ping(org_id: str, job_id: str, marker: str) -> None:
    """A job that fails every run (the retry bookkeeping's probe), through the job unit of work."""
    from workers.unit_of_work import job_run

    with job_run(uuid.UUID(org_id), job_id):
        raise RuntimeError(f"failing on purpose: {marker}")


RECORD_PING = catalog.register(catalog.JobKind("record_ping", max_retries=0))
FAILING_PING = catalog.register(catalog.JobKind("failing_ping", max_retries=0))
TEST_ACTORS: dict[catalog.JobKind, Callable[..., None]] = {
    RECORD_PING: record_ping,
    FAILING_PING: failing_ping,
}


def setup_worker() -> None:
    """`dramatiq tests.support.actors:setup_worker`: the suite's worker process."""
    settings = load_settings()
    runtime = bootstrap(settings)
    register_actors(runtime.broker, settings, extra=TEST_ACTORS)
