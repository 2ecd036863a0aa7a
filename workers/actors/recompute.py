"""Status recomputation actors and the periodic "recompute" step."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import dramatiq

import workers.broker  # noqa: F401 - broker first
from certifications.assignments import recompute
from workers import periodic

MAX_RETRIES = 5  # idempotent: a retry only finishes what is left
TIME_LIMIT_MS = 30 * 60 * 1000  # a large org takes seconds per million rows; chunks commit


@dramatiq.actor(queue_name="default", max_retries=MAX_RETRIES, time_limit=TIME_LIMIT_MS)
def recompute_org(org_id: str, job_id: str | None = None) -> None:
    """Recompute every status of one org for today in its time zone."""
    recompute.run_recompute_org(uuid.UUID(org_id), job_id)


@dramatiq.actor(queue_name="default", max_retries=MAX_RETRIES, time_limit=TIME_LIMIT_MS)
def recompute_certification(org_id: str, certification_id: str, job_id: str | None = None) -> None:
    """After a certification's validity or warning window changed: expiries, then statuses."""
    recompute.run_recompute_certification(uuid.UUID(org_id), uuid.UUID(certification_id), job_id)


def recompute_step(now: datetime, org_id: uuid.UUID | None) -> dict[str, Any]:
    """Scheduler: queue due orgs (local date changed, or last run > 1 h). Tick: all, now."""
    if periodic.scheduled():
        return recompute.enqueue_due(now, org_id)
    return recompute.recompute_orgs_now(now, org_id)


periodic.register_step("recompute", recompute_step, order=10)
