"""The notification delivery log (SPEC §5), and resending what failed or was cancelled."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.db import request_session
from api.pagination import page_schema, paginate
from api.schemas.automation import (
    NotificationListArgs,
    NotificationRetrySchema,
    NotificationSchema,
    RetryCountSchema,
)
from certifications.automation.retry import retry_notification, retry_notifications
from certifications.reporting.listings import notifications_query
from certifications.reporting.names import attach_names
from infra.database import utcnow
from tenancy.auth import requires

blp = Blueprint(
    "notifications", __name__, url_prefix="/notifications", description="Notification log"
)


@blp.route("")
class Notifications(MethodView):
    @requires("certifications:read", module="hse")
    @blp.arguments(NotificationListArgs, location="query")
    @blp.response(200, page_schema(NotificationSchema))
    def get(self, args: dict[str, Any]) -> Any:
        """Notifications with delivery status, attempts, channel, recipient and last error."""
        stmt, keys = notifications_query(args)
        session = request_session()
        return attach_names(
            session, paginate(session, stmt, keys, args["limit"], args.get("cursor"))
        )


@blp.route("/retry")
class RetryMany(MethodView):
    @requires("certifications:update", module="hse")
    @blp.arguments(NotificationRetrySchema)
    @blp.response(202, RetryCountSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Send again every failed (or cancelled) notification since a time; answers the count."""
        count = retry_notifications(request_session(), data["status"], data["since"], utcnow())
        return {"count": count}


@blp.route("/<uuid:notification_id>/retry")
class RetryOne(MethodView):
    @requires("certifications:update", module="hse")
    @blp.response(202, NotificationSchema)
    def post(self, notification_id: uuid.UUID) -> Any:
        """Send a failed or cancelled notification again, its attempts reset (409 otherwise)."""
        session = request_session()
        return attach_names(session, retry_notification(session, notification_id, utcnow()))
