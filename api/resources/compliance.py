"""Org-wide compliance: the summary by certification and group, and the renewal forecast."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.asof import as_of
from api.db import request_session
from api.schemas.history import TrendArgs, TrendSchema
from api.schemas.views import (
    AsOfArgs,
    ComplianceSummarySchema,
    ForecastArgs,
    ForecastSchema,
)
from api.trend import compliance_trend
from certifications.reporting.compliance import compliance_summary
from certifications.reporting.forecast import renewal_forecast
from infra.database import utcnow
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
        return compliance_summary(request_session(), args["include_inactive"], when)


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
