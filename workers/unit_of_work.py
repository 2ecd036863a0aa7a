"""The one unit of work of a job: tenant in, session open, job state kept true, one commit.

    with job_run(org_id, job_id) as run:
        report = some_service(run.session, ...)      # services only flush
        run.finish(report, done=n)

`run.checkpoint(done, total)` commits what is done so far (long, chunked jobs: every chunk is
idempotent, so a retry only finishes what is left). A failure rolls back, is recorded on the Job
in its own short transaction and re-raised, so Dramatiq retries the message: the Job goes back
to `queued` with the error when its message will run again (it came from the outbox, whose sweep
retries for `JOB_RETRY_WINDOW_HOURS`), `failed` otherwise (a direct call).

While the run lasts, the worker's heartbeat keeps the message's outbox row leased
(`workers.lease`): if this process dies, the sweep sends the message again within a lease.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from infra import context
from infra import database as db
from jobs import state
from workers import lease


@dataclass
class JobRun:
    session: Session
    job_id: uuid.UUID | str | None
    result: dict[str, Any] = field(default_factory=dict)

    def progress(self, done: int, total: int | None = None) -> None:
        state.progress_job(self.session, self.job_id, done, total=total)

    def checkpoint(self, done: int, total: int | None = None) -> None:
        """Report progress and commit the work done so far."""
        self.progress(done, total)
        self.session.commit()

    def finish(self, result: dict[str, Any], *, done: int) -> None:
        self.result = result
        state.finish_job(self.session, self.job_id, done=done, result=result)


@contextmanager
def job_run(org_id: uuid.UUID, job_id: uuid.UUID | str | None = None) -> Iterator[JobRun]:
    """Run a block as `org_id`, in one session that commits at the end (see the module doc)."""
    with context.tenant(org_id):
        if job_id:
            with db.new_session() as session:
                state.start_job(session, job_id)
                session.commit()
        with db.new_session() as session:
            try:
                yield JobRun(session, job_id)
                session.commit()
            except BaseException as exc:
                session.rollback()
                if job_id:
                    with db.new_session() as failed:
                        if lease.current_outbox_id() is not None:
                            state.retry_job(failed, job_id, exc)
                        else:
                            state.fail_job(failed, job_id, exc)
                        failed.commit()
                raise


@contextmanager
def platform_run() -> Iterator[Session]:
    """A unit of work across organizations (scheduler bookkeeping, the outbox): one commit."""
    with context.platform(), db.new_session() as session:
        yield session
        session.commit()
