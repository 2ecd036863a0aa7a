"""Webhook endpoints: subscribe, change, rotate the secret, delete; redeliver one delivery.

The URL passes the SSRF guard (`automation.transports.check_webhook_target`) when it is set and
again at every delivery. The secret is returned once, by create and rotate; stored sealed.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from certifications.automation.transports import DeliveryError, check_webhook_target
from certifications.webhooks.models import ALL_EVENTS, EVENT_TYPES, WebhookDelivery, WebhookEndpoint
from infra.errors import Conflict, Invalid, NotFound
from jobs.outbox import request_job
from tenancy.sealed import SealedSecret

ROTATION_OVERLAP = timedelta(hours=24)  # the old secret keeps signing alongside the new one
MAX_ENDPOINTS = 20
DELIVER_JOB = "deliver_webhooks"


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def event_filter(events: list[str]) -> str:
    """`*`, or `|a|b|`: what the triggers match an event type against."""
    if ALL_EVENTS in events:
        return ALL_EVENTS
    return "|" + "|".join(sorted(set(events))) + "|"


def check_url(url: str, *, allow_private: bool) -> None:
    """422 naming `url` when it leads to a private, loopback or unresolvable address."""
    try:
        check_webhook_target(url, allow_private=allow_private)
    except DeliveryError as exc:
        raise Invalid({"url": [str(exc).removeprefix("webhook: ")]}) from exc


def create_endpoint(
    session: Session, data: dict[str, Any], *, actor: str | None, allow_private: bool
) -> tuple[WebhookEndpoint, str]:
    """The new endpoint and its secret (in clear: shown this once)."""
    check_url(data["url"], allow_private=allow_private)
    count = len(session.scalars(select(WebhookEndpoint.id)).all())
    if count >= MAX_ENDPOINTS:
        raise Conflict(f"An organization has at most {MAX_ENDPOINTS} webhook endpoints.")
    secret = new_secret()
    events = list(dict.fromkeys(data["events"]))
    endpoint = WebhookEndpoint(
        url=data["url"],
        description=data.get("description"),
        events=events,
        event_filter=event_filter(events),
        secret=SealedSecret.seal(secret),
        created_by=actor,
    )
    session.add(endpoint)
    session.flush()
    return endpoint, secret


def get_endpoint(session: Session, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFound("webhook", endpoint_id)
    return endpoint


def lock_endpoint(session: Session, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    endpoint = session.scalar(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if endpoint is None:
        raise NotFound("webhook", endpoint_id)
    return endpoint


def update_endpoint(
    session: Session,
    endpoint_id: uuid.UUID,
    changes: dict[str, Any],
    now: datetime,
    *,
    allow_private: bool,
) -> WebhookEndpoint:
    """Change url, events, description; `enabled: true` re-enables a disabled endpoint."""
    endpoint = lock_endpoint(session, endpoint_id)
    if "url" in changes:
        check_url(changes["url"], allow_private=allow_private)
        endpoint.url = changes["url"]
    if "events" in changes:
        endpoint.events = list(dict.fromkeys(changes["events"]))
        endpoint.event_filter = event_filter(endpoint.events)
    if "description" in changes:
        endpoint.description = changes["description"]
    if changes.get("enabled") is True and endpoint.disabled_at is not None:
        endpoint.disabled_at = endpoint.disabled_reason = None
        endpoint.failing_since = endpoint.retry_at = None
        endpoint.failures = 0
        request_delivery(session)
    elif changes.get("enabled") is False and endpoint.disabled_at is None:
        endpoint.disabled_at, endpoint.disabled_reason = now, "disabled by a person"
    endpoint.updated_at = now
    session.flush()
    return endpoint


def rotate_secret(
    session: Session, endpoint_id: uuid.UUID, now: datetime
) -> tuple[WebhookEndpoint, str]:
    """A new secret; the current one keeps signing (a second signature) for 24 hours."""
    endpoint = lock_endpoint(session, endpoint_id)
    secret = new_secret()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = now + ROTATION_OVERLAP
    endpoint.secret = SealedSecret.seal(secret)
    endpoint.updated_at = now
    session.flush()
    return endpoint, secret


def delete_endpoint(session: Session, endpoint_id: uuid.UUID) -> None:
    """The endpoint and its delivery log go (events stay: other endpoints may share them)."""
    session.delete(lock_endpoint(session, endpoint_id))
    session.flush()


def redeliver(
    session: Session, endpoint_id: uuid.UUID, delivery_id: uuid.UUID, now: datetime
) -> WebhookDelivery:
    """Send a delivery again (same event id): back to `pending`, sent at the next round."""
    get_endpoint(session, endpoint_id)
    delivery = session.scalar(
        select(WebhookDelivery).where(
            WebhookDelivery.id == delivery_id, WebhookDelivery.endpoint_id == endpoint_id
        )
    )
    if delivery is None:
        raise NotFound("webhook delivery", delivery_id)
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id)
        .values(status="pending", last_error=None),
        execution_options={"synchronize_session": False},
    )
    session.refresh(delivery)
    request_delivery(session)
    return delivery


def request_delivery(session: Session) -> None:
    """Queue this org's delivery round after the commit (once per transaction)."""
    request_job(session, DELIVER_JOB, once=True)


def known_event_types() -> tuple[str, ...]:
    return (*EVENT_TYPES, ALL_EVENTS)
