"""Job state for long work clients poll (SPEC §5): queued → running → done | failed.

A run that fails while its message will run again goes back to `queued` with the error
(`retry_job`); `failed` is final: the outbox sweep gave up on it (`give_up_job`, jobs/relay.py).

Each helper is a conditional UPDATE (tenant-scoped by the ORM), so an absent job id is a no-op
and a job already `done` is never moved back by a late retry.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from infra import database as db
from jobs.models import Job


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


def fail_job(session: Session, job_id: uuid.UUID | str | None, error: BaseException) -> None:
    _set(session, job_id, state="failed", error=repr(error)[:2000], finished_at=db.utcnow())


def retry_job(session: Session, job_id: uuid.UUID | str | None, error: BaseException) -> None:
    """A run failed and its message will run again: back to `queued`, the error kept."""
    _set(session, job_id, state="queued", error=f"will retry: {error!r}"[:2000])


def give_up_job(session: Session, job_id: uuid.UUID | str | None, error: str) -> None:
    """Retries ran out for good (the outbox row is `dead`)."""
    _set(session, job_id, state="failed", error=error[:2000], finished_at=db.utcnow())


def requeue_job(session: Session, job_id: uuid.UUID | str | None) -> None:
    """An operator sent a dead job again (`certs jobs requeue`)."""
    _set(session, job_id, state="queued", finished_at=None)
