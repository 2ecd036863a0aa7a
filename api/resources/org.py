"""The caller's organization: settings, module flags; and the operator's create endpoint."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.db import request_session
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
from tenancy.auth import requires
from tenancy.organizations import (
    create_organization,
    get_organization,
    set_module,
    update_organization,
)

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
        return get_organization(request_session(), context.require_org_id())

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
