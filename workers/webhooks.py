"""A delivery round of one organization's webhooks: every due endpoint, a bounded batch each.

Per endpoint, three short units of work: claim a batch (lease), send it outside any
transaction, record the outcome. The round goes on while endpoints have work and the time
budget lasts; the actor then queues the next round (more work) or retries after the earliest
backoff (`workers.actors.deliver_webhooks`).
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime

from certifications.automation.delivery import RetryPolicy, retry_policy
from certifications.automation.transports import DeliveryError, send_email
from certifications.webhooks import sending
from certifications.webhooks.dispatch import dispatch
from certifications.webhooks.models import WebhookEndpoint
from certifications.webhooks.transport import send_batch
from infra import database as db
from infra.settings import Settings
from workers.unit_of_work import job_run

log = logging.getLogger("certs.webhooks")

ROUND_SECONDS = 20.0


@dataclass(frozen=True)
class RoundOutcome:
    delivered: int
    more: bool  # the budget ran out with work left: queue another round
    retry_at: datetime | None  # the earliest endpoint backing off with work pending


def deliver_round(
    org_id: uuid.UUID,
    settings: Settings,
    *,
    policy: RetryPolicy | None = None,
    budget_s: float = ROUND_SECONDS,
    batch_size: int = sending.BATCH,
) -> RoundOutcome:
    policy = policy or retry_policy(settings)
    deadline = time.monotonic() + budget_s
    delivered = 0
    while time.monotonic() < deadline:  # the outbox first: batches become deliveries
        with job_run(org_id) as run:
            if not dispatch(run.session):
                break
    while True:
        with job_run(org_id) as run:
            # One instant for both reads: with two, a backoff ending between them made its
            # endpoint neither due nor backing off, and the round ended with work stranded.
            now = db.utcnow()
            due = sending.due_endpoints(run.session, now)
            retry_at = None if due else sending.next_retry(run.session, now)
        if not due:
            return RoundOutcome(delivered, False, retry_at)
        for endpoint_id in due:
            delivered += deliver_endpoint(org_id, endpoint_id, settings, policy, batch_size)
        if time.monotonic() > deadline:
            with job_run(org_id) as run:
                now = db.utcnow()
                more = sending.wants_round(run.session, now)
                retry_at = sending.next_retry(run.session, now)
            return RoundOutcome(delivered, more, retry_at)


def deliver_endpoint(
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    settings: Settings,
    policy: RetryPolicy,
    batch_size: int = sending.BATCH,
) -> int:
    """One batch to one endpoint; returns how many were delivered."""
    with job_run(org_id) as run:
        batch = sending.claim(run.session, endpoint_id, db.utcnow(), batch_size)
    if batch is None:
        return 0
    try:
        delivered, failure = send_batch(batch, allow_private=settings.webhook_allow_private)
    except Exception as exc:  # anything unexpected is recorded like a refusal, never leased
        log.exception("webhook batch to endpoint %s broke", endpoint_id)
        delivered, failure = [], sending.Failure(batch.items[0].delivery_id, repr(exc))
    if failure is not None:
        log.warning("webhook endpoint %s: %s", endpoint_id, failure.error)
    with job_run(org_id) as run:
        recorded = sending.record(run.session, batch, delivered, failure, db.utcnow(), policy)
        if recorded.disabled:
            endpoint = run.session.get(WebhookEndpoint, endpoint_id)
            org_name, admins = sending.admin_emails(run.session, org_id)
    if recorded.disabled and endpoint is not None:
        _tell_admins(settings, org_name, admins, endpoint)
    return len(delivered)


def _tell_admins(
    settings: Settings, org_name: str, admins: list[str], endpoint: WebhookEndpoint
) -> None:
    """Best effort, after the commit: the endpoint stays disabled whether or not this arrives."""
    if not admins:
        return
    msg = EmailMessage()
    msg["Subject"] = f"[{org_name}] Webhook endpoint disabled after 3 days of failures"
    msg["From"] = settings.mail_from
    msg["To"] = ", ".join(admins)
    msg["Date"] = format_datetime(db.utcnow())
    msg.set_content(
        "Hello,\n\n"
        f"The webhook endpoint {endpoint.url} ({endpoint.id}) kept failing for three days and "
        f"was disabled: {endpoint.disabled_reason}.\n\n"
        "Its undelivered events are marked failed. Fix the receiver, then re-enable it with "
        f'PATCH /webhooks/{endpoint.id} {{"enabled": true}} and redeliver what you need.\n'
    )
    if not settings.smtp_host:
        log.warning("webhook endpoint %s disabled (no SMTP_HOST to tell %s)", endpoint.id, admins)
        return
    try:
        send_email(msg, settings)
    except DeliveryError:
        log.exception(
            "could not tell the admins that webhook endpoint %s was disabled", endpoint.id
        )
