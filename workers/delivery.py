"""Delivering one notification as three short units of work: claim, send, record the outcome.

The send happens outside any transaction (an SMTP server or webhook receiver may be slow). A
failed send returns `retry` with the policy's delay; the actor turns that into Dramatiq's retry.
Any exception while composing or sending (not only a refusal) is recorded the same way, so a row
never stays `sending` with its attempts unbounded.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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
from certifications.automation.transports import DeliveryError, send, send_digest, send_report
from certifications.reporting.runs import claim_report_run, mark_report_failure, mark_report_sent
from infra import database as db
from infra.settings import Settings
from workers.unit_of_work import job_run

log = logging.getLogger("certs.delivery")


@dataclass(frozen=True)
class Outcome:
    state: str  # sent, skipped, retry, failed
    retry_in_ms: int | None = None


def _deliver_one(
    org_id: uuid.UUID,
    what: str,
    item_id: uuid.UUID,
    steps: tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any], Callable[..., Any]],
    *,
    settings: Settings,
    policy: RetryPolicy | None,
    now: datetime | None,
) -> Outcome:
    """Claim, send and record one item (`steps`: claim, send, mark sent, mark failure)."""
    claim_it, send_it, mark_it_sent, mark_it_failed = steps
    policy = policy or retry_policy(settings)
    with job_run(org_id) as run:
        out = claim_it(run.session, item_id, now or db.utcnow())
    if out is None:
        return Outcome("skipped")
    try:
        via = send_it(out, settings)
    except DeliveryError as exc:
        log.warning("%s %s attempt %s failed: %s", what, item_id, out.attempts, exc)
        error = str(exc)
    except Exception as exc:  # composing or sending broke: recorded the same way, never `sending`
        log.exception("%s %s attempt %s broke", what, item_id, out.attempts)
        error = f"{type(exc).__name__}: {exc}"
    else:
        with job_run(org_id) as run:
            mark_it_sent(run.session, out, via, db.utcnow())
        return Outcome("sent")
    with job_run(org_id) as run:
        delay = mark_it_failed(run.session, out, error, db.utcnow(), policy)
    return Outcome("retry", delay) if delay is not None else Outcome("failed")


def deliver(
    org_id: uuid.UUID,
    notification_id: uuid.UUID,
    *,
    settings: Settings,
    policy: RetryPolicy | None = None,
    now: datetime | None = None,
) -> Outcome:
    """Claim, send and record one notification of `org_id`."""
    steps = (claim, send, mark_sent, mark_failure)
    return _deliver_one(
        org_id, "notification", notification_id, steps, settings=settings, policy=policy, now=now
    )


def deliver_digest(
    org_id: uuid.UUID,
    digest_id: uuid.UUID,
    *,
    settings: Settings,
    policy: RetryPolicy | None = None,
    now: datetime | None = None,
) -> Outcome:
    """Claim, send and record one digest of `org_id` (its reminders are marked with it)."""

    def mark_sent_digest(session: Any, out: Any, via: Any, at: datetime) -> None:
        mark_digest_sent(session, digest_id, via, at)

    steps = (claim_digest, send_digest, mark_sent_digest, mark_digest_failure)
    return _deliver_one(
        org_id, "digest", digest_id, steps, settings=settings, policy=policy, now=now
    )


def deliver_report(
    org_id: uuid.UUID,
    run_id: uuid.UUID,
    *,
    settings: Settings,
    policy: RetryPolicy | None = None,
    now: datetime | None = None,
) -> Outcome:
    """Claim (building the file), send and record one scheduled report run of `org_id`."""
    steps = (claim_report_run, send_report, mark_report_sent, mark_report_failure)
    return _deliver_one(
        org_id, "report run", run_id, steps, settings=settings, policy=policy, now=now
    )
