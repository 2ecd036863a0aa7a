"""One endpoint's delivery round: claim it, take a bounded batch in order, record the outcome.

One sender per endpoint at a time (a lease on the endpoint row), sending its pending deliveries
in event order (`seq`) and stopping at the first failure: the endpoint then waits out a backoff
(`retry_at`) and starts again from that delivery, so events reach a receiver in order, at least
once (a sender that dies after sending, before recording, leaves them pending: they go again
after the lease, with the same event id). An endpoint failing for `DISABLE_AFTER` is disabled.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.orm import Session

from certifications.automation.delivery import RetryPolicy
from certifications.webhooks.models import (
    WebhookBatch,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from tenancy.models import Organization
from tenancy.sealed import SealedSecret

LEASE = timedelta(minutes=5)
BATCH = 500
DISABLE_AFTER = timedelta(days=3)

E = WebhookEndpoint
D = WebhookDelivery
_CORE_LIKE = {"synchronize_session": False}


@dataclass(frozen=True)
class OutgoingEvent:
    delivery_id: uuid.UUID
    event_id: uuid.UUID
    seq: int
    type: str
    occurred_at: datetime
    attempt: int
    data: dict[str, Any]


@dataclass(frozen=True)
class Batch:
    org_id: uuid.UUID
    endpoint_id: uuid.UUID
    url: str
    secrets: tuple[SealedSecret, ...]  # the current one first
    items: tuple[OutgoingEvent, ...]


@dataclass(frozen=True)
class Failure:
    delivery_id: uuid.UUID
    error: str
    response_code: int | None = None


@dataclass(frozen=True)
class Recorded:
    more: bool  # pending deliveries remain and the endpoint may go on now
    retry_at: datetime | None = None
    disabled: bool = False


def _ready(now: datetime) -> Any:
    return and_(
        E.disabled_at.is_(None),
        or_(E.retry_at.is_(None), E.retry_at <= now),
        or_(E.leased_until.is_(None), E.leased_until < now),
    )


def _has_pending() -> Any:
    return exists(
        select(D.id).where(D.org_id == E.org_id, D.endpoint_id == E.id, D.status == "pending")
    )


def due_endpoints(session: Session, now: datetime) -> list[uuid.UUID]:
    """The org's enabled endpoints with pending deliveries that may be sent to now."""
    return list(session.scalars(select(E.id).where(_ready(now), _has_pending()).order_by(E.id)))


def next_retry(session: Session, now: datetime) -> datetime | None:
    """When the earliest endpoint backing off with pending deliveries may be sent to again.

    A leased endpoint is not waited for: the round holding it checks for due work again after
    recording its batch, which commits after anything a newer round was started for."""
    return session.scalar(
        select(func.min(E.retry_at)).where(
            E.disabled_at.is_(None), E.retry_at.is_not(None), E.retry_at > now, _has_pending()
        )
    )


def wants_round(session: Session, now: datetime) -> bool:
    """Whether batches wait in the outbox, or an enabled endpoint has pending deliveries and is
    not backing off (a backing-off endpoint's round is already waiting out its delay)."""
    if session.scalar(select(WebhookBatch.id).limit(1)) is not None:
        return True
    found = session.scalar(
        select(E.id)
        .where(
            E.disabled_at.is_(None),
            or_(E.retry_at.is_(None), E.retry_at <= now),
            _has_pending(),
        )
        .limit(1)
    )
    return found is not None


def claim(
    session: Session, endpoint_id: uuid.UUID, now: datetime, limit: int = BATCH
) -> Batch | None:
    """Lease the endpoint and take its next `limit` pending deliveries in order (None: nothing)."""
    taken = session.execute(
        update(E).where(E.id == endpoint_id, _ready(now)).values(leased_until=now + LEASE),
        execution_options=_CORE_LIKE,
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return None
    endpoint = session.scalars(
        select(E).where(E.id == endpoint_id).execution_options(populate_existing=True)
    ).one()
    rows = session.execute(
        select(D.id, D.attempts, WebhookEvent)
        .join(WebhookEvent, and_(WebhookEvent.org_id == D.org_id, WebhookEvent.id == D.event_id))
        .where(D.endpoint_id == endpoint_id, D.status == "pending")
        .order_by(D.seq)
        .limit(limit)
    ).all()
    if not rows:
        endpoint.leased_until = None
        session.flush()
        return None
    secrets = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret is not None and expires is not None and expires > now:
        secrets.append(endpoint.previous_secret)
    return Batch(
        org_id=endpoint.org_id,
        endpoint_id=endpoint.id,
        url=endpoint.url,
        secrets=tuple(secrets),
        items=tuple(
            OutgoingEvent(
                delivery_id=delivery_id,
                event_id=event.id,
                seq=event.seq,
                type=event.type,
                occurred_at=event.occurred_at,
                attempt=attempts + 1,
                data=normalized(event.payload),
            )
            for delivery_id, attempts, event in rows
        ),
    )


def normalized(payload: dict[str, Any]) -> dict[str, Any]:
    """Ids as canonical UUID text (SQLite's triggers write 32 hex digits)."""
    out = dict(payload)
    for key, value in payload.items():
        if key.endswith("_id") and isinstance(value, str) and len(value) == 32:
            out[key] = str(uuid.UUID(value))
    return out


def record(
    session: Session,
    batch: Batch,
    delivered: list[tuple[uuid.UUID, int]],
    failure: Failure | None,
    now: datetime,
    policy: RetryPolicy,
) -> Recorded:
    """Mark what was delivered, the failure (if any), and release or back off the endpoint."""
    by_code: dict[int, list[uuid.UUID]] = {}
    for delivery_id, code in delivered:
        by_code.setdefault(code, []).append(delivery_id)
    for code, ids in by_code.items():
        session.execute(
            update(D)
            .where(D.id.in_(ids), D.status == "pending")
            .values(
                status="delivered",
                attempts=D.attempts + 1,
                response_code=code,
                last_error=None,
                last_attempt_at=now,
                delivered_at=now,
            ),
            execution_options=_CORE_LIKE,
        )
    endpoint = session.scalars(
        select(E)
        .where(E.id == batch.endpoint_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    endpoint.leased_until = None
    if failure is None:
        endpoint.failures, endpoint.failing_since, endpoint.retry_at = 0, None, None
        session.flush()
        return Recorded(more=_endpoint_pending(session, batch.endpoint_id))
    session.execute(
        update(D)
        .where(D.id == failure.delivery_id, D.status == "pending")
        .values(
            attempts=D.attempts + 1,
            response_code=failure.response_code,
            last_error=failure.error[:2000],
            last_attempt_at=now,
        ),
        execution_options=_CORE_LIKE,
    )
    endpoint.failures += 1
    endpoint.failing_since = endpoint.failing_since or now
    if endpoint.failing_since <= now - DISABLE_AFTER:
        disable(
            session,
            endpoint,
            f"failing since {endpoint.failing_since.isoformat()}: {failure.error}",
            now,
        )
        return Recorded(more=False, disabled=True)
    endpoint.retry_at = now + timedelta(milliseconds=policy.delay_ms(endpoint.failures))
    session.flush()
    return Recorded(more=False, retry_at=endpoint.retry_at)


def disable(session: Session, endpoint: WebhookEndpoint, reason: str, now: datetime) -> None:
    """Disabled: nothing more is sent; its pending deliveries fail (redeliver sends one again)."""
    endpoint.disabled_at, endpoint.disabled_reason = now, reason[:2000]
    endpoint.retry_at = None
    session.execute(
        update(D)
        .where(D.endpoint_id == endpoint.id, D.status == "pending")
        .values(status="failed", last_error="endpoint disabled"),
        execution_options=_CORE_LIKE,
    )
    session.flush()


def release(session: Session, endpoint_id: uuid.UUID) -> None:
    session.execute(
        update(E).where(E.id == endpoint_id).values(leased_until=None), execution_options=_CORE_LIKE
    )


def _endpoint_pending(session: Session, endpoint_id: uuid.UUID) -> bool:
    found = session.scalar(
        select(D.id).where(D.endpoint_id == endpoint_id, D.status == "pending").limit(1)
    )
    return found is not None


def admin_emails(session: Session, org_id: uuid.UUID) -> tuple[str, list[str]]:
    """(org name, admin emails): whom to tell that an endpoint was disabled."""
    org = session.get(Organization, org_id)
    if org is None:
        return "", []
    return org.name, list(org.admin_emails or [])
