"""Org-wide compliance: the summary by certification and group, and the renewal forecast."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.asof import as_of
from api.db import request_session
from api.rows import json_response
from api.schemas.gate import GateArgs, GateSchema
from api.schemas.history import TrendArgs, TrendSchema
from api.schemas.views import (
    AsOfArgs,
    ComplianceSummarySchema,
    ForecastArgs,
    ForecastSchema,
)
from api.trend import compliance_trend
from certifications.directory.models import Asset, Employee, Location
from certifications.history.asof import AsOf
from certifications.reporting.compliance import compliance_summary
from certifications.reporting.forecast import renewal_forecast
from certifications.reporting.gate import gate_check
from infra.context import require_org_id
from infra.database import utcnow
from infra.errors import NotFound
from tenancy.auth import current_organization, requires
from tenancy.organizations import org_today

blp = Blueprint(
    "compliance", __name__, url_prefix="/compliance", description="Compliance summary, forecast"
)


@blp.route("/summary")
class ComplianceSummary(MethodView):
    @requires("certifications:read", module="hse")
    @blp.arguments(AsOfArgs, location="query")
    @blp.response(200, ComplianceSummarySchema)
    def get(self, args: dict[str, Any]) -> Any:
        """Counts per status and the share of required assignments that are valid: per
        certification, per group (with its subgroups) and org-wide.

        Exempt assignments count under `exempt`, outside the ratio; assignments of inactive
        subjects (leavers) are left out unless `include_inactive=true`. `on`: as of a past
        day, from history."""
        when = as_of(args["on"])
        # Already JSON-shaped (ComplianceSummarySchema documents it; a test holds the answer
        # equal to its dump): marshmallow's dump of ~50 nested objects was a fifth of the time.
        return json_response(compliance_summary(request_session(), args["include_inactive"], when))


@blp.route("/trend")
class ComplianceTrend(MethodView):
    @requires("certifications:read", module="hse")
    @blp.arguments(TrendArgs, location="query")
    @blp.response(200, TrendSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """Daily compliance figures from the snapshots the org's tick writes (one per day;
        `certs snapshots backfill --since` fills past days): counts per status, required,
        compliant and the ratio, summed over the certifications asked for. At most 366 days.
        `location_id`: that site's subjects, computed from history day by day."""
        return compliance_trend(request_session(), args)


@blp.route("/forecast")
class RenewalForecast(MethodView):
    @requires("certifications:read", module="hse")
    @blp.arguments(ForecastArgs, location="query")
    @blp.response(200, ForecastSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """Renewals falling due per calendar month from today, and their cost."""
        today = org_today(current_organization().timezone, utcnow())
        return renewal_forecast(request_session(), today, args["months"], args["include_inactive"])


@blp.route("/check")
class GateCheck(MethodView):
    @requires("certifications:read", module="hse")
    @blp.arguments(GateArgs, location="query")
    @blp.response(200, GateSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """The gate check: may this worker (or asset) work at this site on this date?

        Lists every certification required of it there on that date (its own sources and the
        site's requirements) with the status its record has then; `allowed` is false when any
        is missing, expired, revoked or upcoming (an exemption covering the date does not
        block). A certification with `satisfied_by` takes the best status among its own record
        and the subject's records of its providers (`satisfied_via`, as on assignments).

        `on` before today answers from history (the requirements, records, cycles and
        exemptions as they stood that day, like `/compliance/summary?on=`); today or later
        checks today's requirements with each status projected to that day."""
        session = request_session()
        subject_type = "employee" if "employee_id" in args else "asset"
        subject_id = args.get("employee_id") or args["asset_id"]
        # 404 without echoing the id: a query answer never repeats another org's ids.
        model = Employee if subject_type == "employee" else Asset
        if session.get(model, subject_id) is None:
            raise NotFound(subject_type)
        location_id = args.get("location_id")
        if location_id is not None and session.get(Location, location_id) is None:
            raise NotFound("location")
        timezone = current_organization().timezone
        today = org_today(timezone, utcnow())
        on = args.get("on") or today
        # A past day from history; today and ahead: today's requirements, projected statuses.
        when = AsOf.of(timezone, on) if on < today else None
        org_id = require_org_id()
        return gate_check(session, org_id, subject_type, subject_id, location_id, on, when)
