"""The audit trail (org admins only)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.db import request_session
from api.pagination import page_schema, paginate
from api.schemas.automation import AuditEventSchema, AuditListArgs
from certifications.reporting.listings import audit_query
from tenancy.auth import requires

blp = Blueprint("audit", __name__, url_prefix="/audit-events", description="Audit trail")


@blp.route("")
class AuditEvents(MethodView):
    @requires("org:admin")
    @blp.arguments(AuditListArgs, location="query")
    @blp.response(200, page_schema(AuditEventSchema))
    def get(self, args: dict[str, Any]) -> Any:
        """Every mutation through the API: who, what, before/after, when, request id."""
        stmt, keys = audit_query(args)
        return paginate(request_session(), stmt, keys, args["limit"], args.get("cursor"))
