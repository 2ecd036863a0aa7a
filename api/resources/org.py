"""The caller's organization: settings, module flags; and the operator's create endpoint."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import bindparam, select

from api.db import open_request_session, request_session, tenant_rows
from api.rows import RowShape, json_response
from api.schemas.org import (
    ModuleToggleSchema,
    OrganizationCreateSchema,
    OrganizationPatchSchema,
    OrganizationSchema,
)
from certifications.automation.tasks import check_assignee
from certifications.reporting.schedules import reschedule_all
from infra import context
from infra.database import utcnow
from infra.errors import NotFound
from tenancy.auth import requires
from tenancy.models import Organization
from tenancy.organizations import (
    create_organization,
    get_organization,
    set_module,
    update_organization,
)

SECRET_SET = "webhook_secret_set"  # noqa: S105 - a field name, not a secret
ORG_SHAPE = RowShape(Organization, OrganizationSchema, computed={SECRET_SET})
# Built once and run as Core on a tenant reader's connection (its transaction set the RLS tenant):
# the row is the organization itself, named by the token, so the ORM's tenant criteria have
# nothing to add, and building and ORM-compiling the statement per request cost a fifth of
# the request.
_ORG_ROW = select(
    *ORG_SHAPE.columns, Organization.webhook_secret.is_not(None).label(SECRET_SET)
).where(Organization.id == bindparam("org_id"))

blp = Blueprint("org", __name__, url_prefix="", description="Organizations (tenants)")


@blp.route("/organizations")
class Organizations(MethodView):
    created_location = "/org"  # as seen with a token of the new organization

    @requires("platform:admin", tenant=False)
    @blp.arguments(OrganizationCreateSchema)
    @blp.response(201, OrganizationSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Create an organization (platform operators only)."""
        return create_organization(request_session(), **data)


@blp.route("/org")
class CurrentOrganization(MethodView):
    @requires()
    @blp.response(200, OrganizationSchema)
    def get(self) -> Any:
        """The organization of the token."""
        # Columns and orjson (`api.rows`): no entity, no marshmallow dump, no decryption of
        # the webhook secret only to say whether there is one.
        org_id = context.require_org_id()
        session = open_request_session()
        loaded = None
        if session is not None:
            loaded = session.identity_map.get(session.identity_key(Organization, org_id))
        if loaded is not None:  # auth loaded it in this transaction (its cache had none)
            secret_set = loaded.webhook_secret is not None
            return json_response(ORG_SHAPE.entity_item(loaded, **{SECRET_SET: secret_set}))
        rows = tenant_rows(_ORG_ROW, {"org_id": org_id})  # no session: auth's cache had it
        if not rows:
            raise NotFound("organization", org_id)
        return json_response(ORG_SHAPE.item(rows[0]))

    @requires("org:admin")
    @blp.arguments(OrganizationPatchSchema)
    @blp.response(200, OrganizationSchema)
    def patch(self, changes: dict[str, Any]) -> Any:
        """Change name, time zone, admin emails, webhook URL and secret, default task assignee."""
        session = request_session()
        org = get_organization(session, context.require_org_id())
        if "default_task_assignee_id" in changes:
            check_assignee(session, changes["default_task_assignee_id"], "default_task_assignee_id")
        zone = org.timezone
        update_organization(session, org, changes)
        if org.timezone != zone:  # report schedules read cron in the org's zone
            reschedule_all(session, org.timezone, utcnow())
        return org


@blp.route("/org/modules/<string:module>")
class OrganizationModule(MethodView):
    @requires("org:admin")
    @blp.arguments(ModuleToggleSchema)
    @blp.response(200, OrganizationSchema)
    def put(self, data: dict[str, Any], module: str) -> Any:
        """Enable or disable a module (`hse`: the HSE/Production module)."""
        session = request_session()
        org = get_organization(session, context.require_org_id())
        set_module(session, org, module, data["enabled"])
        return org
