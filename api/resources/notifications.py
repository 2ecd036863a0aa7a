"""The notification delivery log (SPEC §5)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.db import request_session
from api.pagination import page_schema, paginate
from api.schemas.automation import NotificationListArgs, NotificationSchema
from certifications.reporting.listings import notifications_query
from certifications.reporting.names import attach_names
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
