"""Job state for long work clients poll (SPEC §5): queued → running → done | failed.

Each helper is a conditional UPDATE (tenant-scoped by the ORM), so an absent job id is a no-op
and a job already `done` is never moved back by a late retry.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import update
from sqlalchemy.orm import Session

from infra import database as db
from jobs.models import Job

T = TypeVar("T")


def _as_uuid(job_id: uuid.UUID | str | None) -> uuid.UUID | None:
    if job_id is None or job_id == "":
        return None
    return job_id if isinstance(job_id, uuid.UUID) else uuid.UUID(str(job_id))


def _set(session: Session, job_id: uuid.UUID | str | None, **values: Any) -> None:
    jid = _as_uuid(job_id)
    if jid is None:
        return
    session.execute(
        update(Job)
        .where(Job.id == jid, Job.state != "done")
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def start_job(session: Session, job_id: uuid.UUID | str | None, total: int | None = None) -> None:
    values: dict[str, Any] = {"state": "running", "started_at": db.utcnow(), "error": None}
    if total is not None:
        values["total"] = total
    _set(session, job_id, **values)


def progress_job(
    session: Session, job_id: uuid.UUID | str | None, done: int, total: int | None = None
) -> None:
    values: dict[str, Any] = {"done": done}
    if total is not None:
        values["total"] = total
    _set(session, job_id, **values)


def finish_job(
    session: Session,
    job_id: uuid.UUID | str | None,
    *,
    done: int,
    result: dict[str, Any] | None = None,
) -> None:
    _set(session, job_id, state="done", done=done, result=result, finished_at=db.utcnow())


def fail_job(job_id: uuid.UUID | str | None, error: BaseException) -> None:
    """Record a failure in its own transaction (the work's transaction was rolled back)."""
    if _as_uuid(job_id) is None:
        return
    with db.new_session() as session:
        _set(session, job_id, state="failed", error=repr(error)[:2000], finished_at=db.utcnow())
        session.commit()


def run_job(job_id: uuid.UUID | str | None, work: Callable[[Session], T]) -> T:
    """Run `work(session)` in one transaction, keeping the job's state true on either outcome.

    The job shows `running` (own short transaction) while the work runs; `work` reports
    progress and finishes it in its own transaction. A failure is recorded on the job and
    re-raised (the broker retries; a later success moves the job to `done`).
    """
    if _as_uuid(job_id) is not None:
        with db.new_session() as session:
            start_job(session, job_id)
            session.commit()
    try:
        with db.new_session() as session:
            result = work(session)
            session.commit()
            return result
    except Exception as exc:
        fail_job(job_id, exc)
        raise
