"""Reminder preferences per email address: immediate, or a daily/weekly digest at an hour."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import ValidationError

from api.db import request_session
from api.fields import Email
from api.pagination import page_schema, paginate
from api.schemas.preferences import PreferenceArgs, PreferencePutSchema, PreferenceSchema
from certifications.automation import preferences
from certifications.automation.models import NotificationPreference
from infra.errors import Invalid
from tenancy.auth import requires

blp = Blueprint(
    "notification_preferences",
    __name__,
    url_prefix="/notification-preferences",
    description="Reminder preferences per recipient (digests)",
)


def _address(email: str) -> str:
    try:
        return str(Email()._deserialize(email, "email", None))
    except ValidationError as exc:
        raise Invalid({"email": exc.messages}) from exc


@blp.route("")
class Preferences(MethodView):
    @requires("certifications:read", module="hse")
    @blp.arguments(PreferenceArgs, location="query")
    @blp.response(200, page_schema(PreferenceSchema))
    def get(self, args: dict[str, Any]) -> Any:
        """Every address with its own preference, by address (the rest follow the org's)."""
        # Addresses are unique; the creation time makes the cursor the suite's two-part shape.
        key = [NotificationPreference.email, NotificationPreference.created_at]
        return paginate(
            request_session(), preferences.list_statement(), key, args["limit"], args.get("cursor")
        )


@blp.route("/<string:email>")
class Preference(MethodView):
    @requires("certifications:read", module="hse")
    @blp.response(200, PreferenceSchema)
    def get(self, email: str) -> Any:
        """The address's preference (404: it follows the organization's digest setting)."""
        return preferences.get_preference(request_session(), _address(email))

    @requires("certifications:update", module="hse")
    @blp.arguments(PreferencePutSchema)
    @blp.response(200, PreferenceSchema)
    def put(self, data: dict[str, Any], email: str) -> Any:
        """Set how the address gets its email reminders: `immediate` (one email each), or one
        `daily` / `weekly` digest at `hour` (and `weekday`) in the organization's time zone."""
        return preferences.put_preference(request_session(), _address(email), data)

    @requires("certifications:delete", module="hse")
    @blp.response(204)
    def delete(self, email: str) -> None:
        """Forget the address's preference: it follows the organization's setting again."""
        preferences.delete_preference(request_session(), _address(email))
