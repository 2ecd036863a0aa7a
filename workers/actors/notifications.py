"""Notification delivery and rule evaluation actors, and their periodic steps."""

from __future__ import annotations

import uuid

import dramatiq

import workers.broker  # noqa: F401 - broker first
from certifications.automation import delivery
from certifications.automation import pipeline as automation
from infra import database as db
from workers.periodic import register_step

# The notification row's `attempts` is the real bound (NOTIFICATION_MAX_ATTEMPTS); this only
# keeps a message from looping forever if the database write of a failure itself keeps failing.
DRAMATIQ_MAX_RETRIES = 20


@dramatiq.actor(queue_name="notifications", max_retries=DRAMATIQ_MAX_RETRIES, time_limit=120_000)
def deliver_notification(org_id: str, notification_id: str, job_id: str | None = None) -> None:
    """Send one notification (email or webhook); retry with backoff, then `failed`."""
    outcome = delivery.run_delivery(
        uuid.UUID(notification_id), settings=delivery.runtime_settings()
    )
    if outcome.retry_in_ms is not None:
        raise dramatiq.Retry(delay=outcome.retry_in_ms)


@dramatiq.actor(queue_name="default", max_retries=5)
def evaluate_notification_rules(org_id: str, job_id: str | None = None) -> None:
    """Evaluate task and notification rules for one org now, then queue the deliveries.

    Other services may request it (outbox) after a write that changes statuses, so a revoked
    assignment is notified within seconds rather than at the next tick.
    """
    now = db.utcnow()
    automation.rules_step(now, uuid.UUID(org_id))
    with db.new_session() as session:
        automation.enqueue_deliveries(session, now)
        session.commit()


register_step("rules", automation.rules_step, order=20)
register_step("deliver", automation.deliver_step, order=30)
