"""Delivering one notification as three short units of work: claim, send, record the outcome.

The send happens outside any transaction (an SMTP server or webhook receiver may be slow). A
failed send returns `retry` with the policy's delay; the actor turns that into Dramatiq's retry.
Any exception while composing or sending (not only a refusal) is recorded the same way, so a row
never stays `sending` with its attempts unbounded.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from certifications.automation.delivery import (
    RetryPolicy,
    claim,
    mark_failure,
    mark_sent,
    retry_policy,
)
from certifications.automation.digests import (
    claim_digest,
    mark_digest_failure,
    mark_digest_sent,
)
from certifications.automation.transports import DeliveryError, send, send_digest
from infra import database as db
from infra.settings import Settings
from workers.unit_of_work import job_run

log = logging.getLogger("certs.delivery")


@dataclass(frozen=True)
class Outcome:
    state: str  # sent, skipped, retry, failed
    retry_in_ms: int | None = None


def deliver(
    org_id: uuid.UUID,
    notification_id: uuid.UUID,
    *,
    settings: Settings,
    policy: RetryPolicy | None = None,
    now: datetime | None = None,
) -> Outcome:
    """Claim, send and record one notification of `org_id`."""
    policy = policy or retry_policy(settings)
    with job_run(org_id) as run:
        out = claim(run.session, notification_id, now or db.utcnow())
    if out is None:
        return Outcome("skipped")
    try:
        via = send(out, settings)
    except DeliveryError as exc:
        log.warning("notification %s attempt %s failed: %s", notification_id, out.attempts, exc)
        error = str(exc)
    except Exception as exc:  # composing or sending broke: recorded the same way, never `sending`
        log.exception("notification %s attempt %s broke", notification_id, out.attempts)
        error = f"{type(exc).__name__}: {exc}"
    else:
        with job_run(org_id) as run:
            mark_sent(run.session, out, via, db.utcnow())
        return Outcome("sent")
    with job_run(org_id) as run:
        delay = mark_failure(run.session, out, error, db.utcnow(), policy)
    return Outcome("retry", delay) if delay is not None else Outcome("failed")


def deliver_digest(
    org_id: uuid.UUID,
    digest_id: uuid.UUID,
    *,
    settings: Settings,
    policy: RetryPolicy | None = None,
    now: datetime | None = None,
) -> Outcome:
    """Claim, send and record one digest of `org_id` (its reminders are marked with it)."""
    policy = policy or retry_policy(settings)
    with job_run(org_id) as run:
        out = claim_digest(run.session, digest_id, now or db.utcnow())
    if out is None:
        return Outcome("skipped")
    try:
        via = send_digest(out, settings)
    except DeliveryError as exc:
        log.warning("digest %s attempt %s failed: %s", digest_id, out.attempts, exc)
        error = str(exc)
    except Exception as exc:  # composing or sending broke: recorded the same way, never `sending`
        log.exception("digest %s attempt %s broke", digest_id, out.attempts)
        error = f"{type(exc).__name__}: {exc}"
    else:
        with job_run(org_id) as run:
            mark_digest_sent(run.session, digest_id, via, db.utcnow())
        return Outcome("sent")
    with job_run(org_id) as run:
        delay = mark_digest_failure(run.session, out, error, db.utcnow(), policy)
    return Outcome("retry", delay) if delay is not None else Outcome("failed")
