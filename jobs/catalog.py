"""Every kind of background job, by actor name: its queue, retries and time limit.

The domain asks for a job by name (`jobs.outbox.request_job`); the relay needs the queue to
publish it; `workers.actors` binds each name to the function that runs it. Keeping the list here
lets a process that only publishes (the API under gunicorn) do so without importing the workers.
"""

from __future__ import annotations

from dataclasses import dataclass

MINUTE_MS = 60_000


@dataclass(frozen=True)
class JobKind:
    actor_name: str
    queue_name: str = "default"
    # Dramatiq's own retries (with backoff) for a job that raised; jobs are idempotent.
    max_retries: int = 5
    time_limit_ms: int = 15 * MINUTE_MS


FANOUT_CERTIFICATION = JobKind("fanout_certification")
FANOUT_EMPLOYEES = JobKind("fanout_employees")
RECOMPUTE_CERTIFICATION = JobKind("recompute_certification", time_limit_ms=30 * MINUTE_MS)
TICK_ORG = JobKind("tick_org", time_limit_ms=30 * MINUTE_MS)
# The notification row's `attempts` bounds delivery (settings.notification_max_attempts); the
# actor's retries carry the backoff between attempts.
DELIVER_NOTIFICATION = JobKind(
    "deliver_notification", queue_name="notifications", max_retries=20, time_limit_ms=2 * MINUTE_MS
)
# One digest email per recipient and period; its attempts are bounded the same way.
DELIVER_DIGEST = JobKind(
    "deliver_digest", queue_name="notifications", max_retries=20, time_limit_ms=2 * MINUTE_MS
)
# One scheduled report's email (the file built at claim time); attempts bounded the same way.
DELIVER_REPORT = JobKind(
    "deliver_report", queue_name="notifications", max_retries=20, time_limit_ms=15 * MINUTE_MS
)

# One organization's webhook delivery round; the endpoints' backoff rides on Dramatiq's retries
# (`Retry(delay=...)`), and the tick queues a round whenever deliveries wait.
DELIVER_WEBHOOKS = JobKind(
    "deliver_webhooks", queue_name="notifications", max_retries=10_000, time_limit_ms=2 * MINUTE_MS
)

# An audit pack of a large scope (certifications.reporting.audit_pack), built off the request.
AUDIT_PACK = JobKind("audit_pack", max_retries=2, time_limit_ms=15 * MINUTE_MS)

KINDS: dict[str, JobKind] = {
    kind.actor_name: kind
    for kind in (
        FANOUT_CERTIFICATION,
        FANOUT_EMPLOYEES,
        RECOMPUTE_CERTIFICATION,
        TICK_ORG,
        DELIVER_NOTIFICATION,
        DELIVER_DIGEST,
        DELIVER_REPORT,
        DELIVER_WEBHOOKS,
        AUDIT_PACK,
    )
}


class UnknownJob(LookupError):
    """An outbox row names an actor no job kind is registered for."""


def kind_of(actor_name: str) -> JobKind:
    try:
        return KINDS[actor_name]
    except KeyError:
        raise UnknownJob(f"no job kind named {actor_name!r}") from None


def register(kind: JobKind) -> JobKind:
    """Add a job kind (tests add their own probes); re-registering the same kind is a no-op."""
    KINDS[kind.actor_name] = kind
    return kind
