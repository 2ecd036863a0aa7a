"""Event webhooks: endpoints an organization subscribes, their delivery log, redelivery."""

from __future__ import annotations

import uuid
from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from api.db import request_session
from api.pagination import page_schema, paginate
from api.schemas.webhooks import (
    WebhookCreateSchema,
    WebhookDeliveryListArgs,
    WebhookDeliverySchema,
    WebhookPatchSchema,
    WebhookSchema,
    WebhookWithSecretSchema,
)
from certifications.webhooks import endpoints
from certifications.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from infra.context import current_actor
from infra.database import utcnow
from infra.settings import Settings
from tenancy.auth import requires

blp = Blueprint("webhooks", __name__, url_prefix="/webhooks", description="Event webhooks")


def _allow_private() -> bool:
    settings: Settings = current_app.config["CERTS_SETTINGS"]
    return settings.webhook_allow_private


def _with_secret(endpoint: WebhookEndpoint, secret: str) -> WebhookEndpoint:
    endpoint.revealed_secret = secret  # type: ignore[attr-defined]  # this response only
    return endpoint


@blp.route("")
class Webhooks(MethodView):
    @requires("org:admin")
    @blp.response(200, WebhookSchema(many=True))
    def get(self) -> Any:
        """The organization's webhook endpoints (at most 20)."""
        return (
            request_session()
            .scalars(
                select(WebhookEndpoint).order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
            )
            .all()
        )

    @requires("org:admin")
    @blp.arguments(WebhookCreateSchema)
    @blp.response(201, WebhookWithSecretSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Subscribe a URL to event types; answers its signing secret, this once."""
        endpoint, secret = endpoints.create_endpoint(
            request_session(), data, actor=current_actor(), allow_private=_allow_private()
        )
        return _with_secret(endpoint, secret)


@blp.route("/<uuid:webhook_id>")
class Webhook(MethodView):
    @requires("org:admin")
    @blp.response(200, WebhookSchema)
    def get(self, webhook_id: uuid.UUID) -> Any:
        """One endpoint (never its secret)."""
        return endpoints.get_endpoint(request_session(), webhook_id)

    @requires("org:admin")
    @blp.arguments(WebhookPatchSchema)
    @blp.response(200, WebhookSchema)
    def patch(self, changes: dict[str, Any], webhook_id: uuid.UUID) -> Any:
        """Change URL, events, description; disable or re-enable."""
        return endpoints.update_endpoint(
            request_session(), webhook_id, changes, utcnow(), allow_private=_allow_private()
        )

    @requires("org:admin")
    @blp.response(204)
    def delete(self, webhook_id: uuid.UUID) -> None:
        """Delete the endpoint and its delivery log."""
        endpoints.delete_endpoint(request_session(), webhook_id)


@blp.route("/<uuid:webhook_id>/rotate-secret")
class RotateSecret(MethodView):
    @requires("org:admin")
    @blp.response(200, WebhookWithSecretSchema)
    def post(self, webhook_id: uuid.UUID) -> Any:
        """A new secret (shown once); the old one keeps signing alongside it for 24 hours."""
        endpoint, secret = endpoints.rotate_secret(request_session(), webhook_id, utcnow())
        return _with_secret(endpoint, secret)


def _delivery_row(delivery: WebhookDelivery, event_type: str) -> WebhookDelivery:
    delivery.event_type = event_type  # type: ignore[attr-defined]  # for the schema
    return delivery


@blp.route("/<uuid:webhook_id>/deliveries")
class Deliveries(MethodView):
    @requires("org:admin")
    @blp.arguments(WebhookDeliveryListArgs, location="query")
    @blp.response(200, page_schema(WebhookDeliverySchema))
    def get(self, args: dict[str, Any], webhook_id: uuid.UUID) -> Any:
        """The endpoint's deliveries in event order: status, attempts, response code."""
        session = request_session()
        endpoints.get_endpoint(session, webhook_id)
        stmt = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == webhook_id)
        if args.get("status"):
            stmt = stmt.where(WebhookDelivery.status == args["status"])
        page = paginate(
            session,
            stmt,
            [WebhookDelivery.seq, WebhookDelivery.id],
            args["limit"],
            args.get("cursor"),
        )
        types = dict(
            session.execute(
                select(WebhookEvent.id, WebhookEvent.type).where(
                    WebhookEvent.id.in_([d.event_id for d in page.items])
                )
            ).all()
        )
        page.items = [_delivery_row(d, types.get(d.event_id, "")) for d in page.items]
        return page


@blp.route("/<uuid:webhook_id>/deliveries/<uuid:delivery_id>/redeliver")
class Redeliver(MethodView):
    @requires("org:admin")
    @blp.response(202, WebhookDeliverySchema)
    def post(self, webhook_id: uuid.UUID, delivery_id: uuid.UUID) -> Any:
        """Send this delivery's event again (same event id), at the next delivery round."""
        session = request_session()
        delivery = endpoints.redeliver(session, webhook_id, delivery_id, utcnow())
        event_type = session.scalar(
            select(WebhookEvent.type).where(WebhookEvent.id == delivery.event_id)
        )
        return _delivery_row(delivery, event_type or "")
