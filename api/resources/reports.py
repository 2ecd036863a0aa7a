"""Reports for inspectors: the audit pack of a location, a client or a group, as PDF or XLSX;
and report schedules, which email an audit pack or a compliance summary on a cron schedule."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from api.asof import as_of
from api.db import request_session
from api.pagination import page_schema, paginate
from api.resources.documents import store
from api.schemas.history import AuditPackArgs, AuditPackJobSchema
from api.schemas.report_schedules import (
    ReportScheduleCreateSchema,
    ReportScheduleListArgs,
    ReportSchedulePatchSchema,
    ReportScheduleSchema,
)
from certifications.evidence.storage import attachment
from certifications.history.asof import AsOf
from certifications.history.scope import resolve_scope
from certifications.reporting import schedules
from certifications.reporting.audit_pack import (
    CONTENT_TYPES,
    SYNC_SUBJECTS,
    build_audit_pack,
    filename,
    render,
)
from certifications.reporting.models import ReportSchedule
from certifications.reporting.schedules import scope_of
from infra.database import get_or_not_found, utcnow
from infra.errors import Conflict
from jobs import catalog
from jobs.models import Job
from jobs.outbox import request_job
from tenancy.auth import current_organization, current_subject, requires
from tenancy.organizations import org_today

blp = Blueprint("reports", __name__, url_prefix="/reports", description="Reports")

_FILE_DOC = {
    "responses": {
        200: {
            "description": "The audit pack (a scope of at most "
            f"{SYNC_SUBJECTS} subjects is answered at once)",
            "content": {
                CONTENT_TYPES["pdf"]: {"schema": {"type": "string", "format": "binary"}},
                CONTENT_TYPES["xlsx"]: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    }
}


def _file(data: bytes, name: str, content_type: str) -> Response:
    resp = Response(data, mimetype=content_type)
    resp.headers["Content-Disposition"] = attachment(name)
    resp.headers["Cache-Control"] = "private, no-store"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


@blp.route("/audit-pack")
class AuditPackResource(MethodView):
    @requires("certifications:read", module="hse")
    @blp.arguments(AuditPackArgs, location="query")
    @blp.response(202, AuditPackJobSchema)
    @blp.doc(**_FILE_DOC)
    def get(self, args: dict[str, Any]) -> Any:
        """The audit pack of one location, client or group on a day (default today): cover,
        compliance summary, a 12-month trend, the members × certifications matrix, exemptions
        with reasons and the documents with their SHA-256.

        A larger scope answers 202 with a job: poll `GET /jobs/{id}`, then download the file
        from `result.download` (kept about an hour)."""
        session = request_session()
        org = current_organization()
        on = args["on"] or org_today(org.timezone, utcnow())
        as_of(on)  # 422 for a future day
        when = AsOf.of(org.timezone, on)
        ids = {k: args[k] for k in ("location_id", "client_id", "group_id")}
        scope = resolve_scope(session, when, **ids)
        if len(scope.subject_ids or ()) > SYNC_SUBJECTS:
            job = request_job(
                session,
                catalog.AUDIT_PACK.actor_name,
                job_kind="audit_pack",
                created_by=current_subject(),
                total=1,
                scope_kind=scope.kind,
                scope_id=str(scope.id),
                on=on.isoformat(),
                fmt=args["format"],
            )
            assert job is not None
            return {"job_id": job.id, "status_url": f"/api/v1/jobs/{job.id}"}
        pack = build_audit_pack(session, org.name, org.timezone, scope, when, utcnow())
        fmt = args["format"]
        return _file(render(pack, fmt), filename(scope, on, fmt), CONTENT_TYPES[fmt])


@blp.route("/audit-pack/<uuid:job_id>")
class AuditPackDownload(MethodView):
    @requires("certifications:read", module="hse")
    @blp.doc(**_FILE_DOC)
    def get(self, job_id: uuid.UUID) -> Any:
        """Download the audit pack a job built (409 while the job is not done)."""
        job = get_or_not_found(request_session(), Job, job_id, "job")
        if job.kind != "audit_pack":
            raise Conflict("This job did not build an audit pack.")
        if job.state != "done" or not job.result:
            raise Conflict(f"The audit pack is not ready: the job is {job.state}.")
        result = job.result
        with store().open(result["key"]) as fh:
            data = fh.read()
        return _file(data, result["filename"], result["content_type"])


# --- scheduled reports --------------------------------------------------------------------------


def _view(schedule: ReportSchedule, timezone: str) -> ReportSchedule:
    schedule.scope_view = scope_of(schedule)  # type: ignore[attr-defined]  # for the schema
    schedule.timezone_view = timezone  # type: ignore[attr-defined]
    return schedule


@blp.route("/schedules")
class ReportSchedules(MethodView):
    @requires("certifications:read", module="hse")
    @blp.arguments(ReportScheduleListArgs, location="query")
    @blp.response(200, page_schema(ReportScheduleSchema))
    def get(self, args: dict[str, Any]) -> Any:
        """The organization's report schedules, oldest first (a keyset page)."""
        session = request_session()
        stmt = select(ReportSchedule)
        if args.get("kind"):
            stmt = stmt.where(ReportSchedule.kind == args["kind"])
        keys = [ReportSchedule.created_at, ReportSchedule.id]
        page = paginate(session, stmt, keys, args["limit"], args.get("cursor"))
        zone = current_organization().timezone
        page.items = [_view(s, zone) for s in page.items]
        return page

    @requires("certifications:create", module="hse")
    @blp.arguments(ReportScheduleCreateSchema)
    @blp.response(201, ReportScheduleSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Email an audit pack or a compliance summary on a cron schedule read in the org's
        time zone: one email per run, to every recipient, the file attached.

        A run that falls due while no worker runs is made once, for the latest occurrence
        missed (not one per missed occurrence)."""
        org = current_organization()
        schedule = schedules.create_schedule(
            request_session(), data, org.timezone, utcnow(), current_subject()
        )
        return _view(schedule, org.timezone)


@blp.route("/schedules/<uuid:schedule_id>")
class ReportScheduleResource(MethodView):
    @requires("certifications:read", module="hse")
    @blp.response(200, ReportScheduleSchema)
    def get(self, schedule_id: uuid.UUID) -> Any:
        """One report schedule, with its next and last run."""
        schedule = schedules.get_schedule(request_session(), schedule_id)
        return _view(schedule, current_organization().timezone)

    @requires("certifications:update", module="hse")
    @blp.arguments(ReportSchedulePatchSchema)
    @blp.response(200, ReportScheduleSchema)
    def patch(self, changes: dict[str, Any], schedule_id: uuid.UUID) -> Any:
        """Change what, when or to whom; `enabled: false` pauses it. The next run is
        recomputed from now."""
        org = current_organization()
        schedule = schedules.update_schedule(
            request_session(), schedule_id, changes, org.timezone, utcnow()
        )
        return _view(schedule, org.timezone)

    @requires("certifications:delete", module="hse")
    @blp.response(204)
    def delete(self, schedule_id: uuid.UUID) -> None:
        """Delete the schedule and the record of its runs."""
        schedules.delete_schedule(request_session(), schedule_id)
