"""The transactional outbox: ask for background work inside the caller's transaction.

The row commits (or rolls back) with the change that asked for it; `jobs.relay` relays it to
the broker after commit and sweeps up anything the broker missed, so no job runs for a rolled-back
change and none is lost while the broker is down.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from infra.context import current_org_id, current_request_id
from jobs.models import Job, OutboxMessage

PENDING_KEY = "outbox_ids"
# Ids of the pollable jobs requested in the current transaction (`started_jobs`).
STARTED_KEY = "outbox_started_jobs"
# Actor names requested with `once=True` in the current transaction (cleared by the relay's
# after-commit and after-rollback hooks, with PENDING_KEY).
ONCE_KEY = "outbox_once"


def request_job(
    session: Session,
    actor_name: str,
    *,
    job_kind: str | None = None,
    created_by: str | None = None,
    total: int | None = None,
    once: bool = False,
    **payload: Any,
) -> Job | None:
    """Queue `actor_name(org_id=..., job_id=..., **payload)` to run after this transaction commits.

    With `job_kind`, also creates a pollable Job (SPEC §5) and passes its id to the actor.
    With `once`, a second request of the same actor in the same transaction is dropped.
    """
    if once:
        requested = session.info.setdefault(ONCE_KEY, set())
        if actor_name in requested:
            return None
        requested.add(actor_name)
    org_id = current_org_id()
    job = None
    if job_kind is not None:
        job = Job(kind=job_kind, state="queued", created_by=created_by, total=total)
        session.add(job)
        session.flush()
        session.info.setdefault(STARTED_KEY, []).append(job.id)
    kwargs = {k: _jsonable(v) for k, v in payload.items()}
    kwargs["org_id"] = str(org_id) if org_id else None
    if job is not None:
        kwargs["job_id"] = str(job.id)
    msg = OutboxMessage(
        org_id=org_id,
        actor_name=actor_name,
        payload=kwargs,
        job_id=job.id if job else None,
        request_id=current_request_id(),
    )
    session.add(msg)
    session.flush()
    session.info.setdefault(PENDING_KEY, []).append(msg.id)
    return job


def started_jobs(session: Session) -> list[uuid.UUID]:
    """The pollable jobs this transaction requested so far, oldest first."""
    return list(session.info.get(STARTED_KEY, []))


def _jsonable(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
