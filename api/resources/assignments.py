"""Assignments: a certification record of one subject (SPEC §4, §9)."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.db import request_session
from api.pagination import page_schema, paginate
from api.schemas.assignments import (
    AssignmentCreateSchema,
    AssignmentListArgs,
    AssignmentPatchSchema,
    AssignmentSchema,
    ExemptionRequestSchema,
    FormSubmissionCreateSchema,
    FormSubmissionSchema,
    HistorySchema,
    RenewSchema,
    RevokeSchema,
)
from certifications.assignments import exemptions, service
from certifications.reporting.listings import assignments_query
from infra.database import utcnow
from tenancy.auth import current_subject, requires

blp = Blueprint(
    "assignments", __name__, url_prefix="/assignments", description="Certification assignments"
)


@blp.route("")
class Assignments(MethodView):
    @requires("certifications:read", module="hse")
    @blp.arguments(AssignmentListArgs, location="query")
    @blp.response(200, page_schema(AssignmentSchema))
    def get(self, args: dict[str, Any]) -> Any:
        """List assignments, filtered by certification, subject, status, source or required."""
        stmt, keys = assignments_query(args)
        return paginate(request_session(), stmt, keys, args["limit"], args.get("cursor"))

    @requires("certifications:create", module="hse")
    @blp.arguments(AssignmentCreateSchema)
    @blp.response(201, AssignmentSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Assign a certification to an employee, asset, client or location."""
        return service.create_assignment(
            request_session(), data, actor=current_subject(), now=utcnow()
        )


@blp.route("/<uuid:assignment_id>")
class AssignmentResource(MethodView):
    @requires("certifications:read", module="hse")
    @blp.response(200, AssignmentSchema)
    def get(self, assignment_id: uuid.UUID) -> Any:
        """One assignment with its stored status."""
        return service.get_assignment(request_session(), assignment_id)

    @requires("certifications:update", module="hse")
    @blp.arguments(AssignmentPatchSchema)
    @blp.response(200, AssignmentSchema)
    def patch(self, changes: dict[str, Any], assignment_id: uuid.UUID) -> Any:
        """Correct the current cycle's dates or notes (expiry follows unless given)."""
        session = request_session()
        assignment = service.get_assignment(session, assignment_id)
        return service.update_assignment(session, assignment, changes, now=utcnow())

    @requires("certifications:delete", module="hse")
    @blp.response(204)
    def delete(self, assignment_id: uuid.UUID) -> None:
        """Delete an assignment made by hand by mistake.

        It leaves lists, views, figures, reminders and tasks; its history stays in the audit
        trail. An assignment a rule requires (`source` `role`) answers 409: exempt it instead."""
        session = request_session()
        service.delete_assignment(session, service.get_assignment(session, assignment_id))


@blp.route("/<uuid:assignment_id>/exemption")
class Exemption(MethodView):
    @requires("certifications:update", module="hse")
    @blp.arguments(ExemptionRequestSchema)
    @blp.response(200, AssignmentSchema)
    def post(self, data: dict[str, Any], assignment_id: uuid.UUID) -> Any:
        """Exempt the assignment from compliance (sets or replaces `exemption`).

        It keeps its computed status but gets no reminders nor tasks (pending ones are
        cancelled) and counts under `exempt`, until `until` (inclusive) or until lifted."""
        session = request_session()
        assignment = service.get_assignment(session, assignment_id)
        return exemptions.exempt(
            session,
            assignment,
            data["reason"],
            data["until"],
            actor=current_subject(),
            now=utcnow(),
        )

    @requires("certifications:delete", module="hse")  # SPEC §3: DELETE takes the delete scope
    @blp.response(200, AssignmentSchema)
    def delete(self, assignment_id: uuid.UUID) -> Any:
        """Lift the exemption: the assignment counts again (without one, changes nothing)."""
        session = request_session()
        assignment = service.get_assignment(session, assignment_id)
        return exemptions.lift(session, assignment, now=utcnow())


@blp.route("/<uuid:assignment_id>/renew")
class Renew(MethodView):
    @requires("certifications:update", module="hse")
    @blp.arguments(RenewSchema)
    @blp.response(200, AssignmentSchema)
    def post(self, data: dict[str, Any], assignment_id: uuid.UUID) -> Any:
        """Record a new cycle; the previous one stays in the history."""
        session = request_session()
        assignment = service.get_assignment(session, assignment_id)
        return service.renew_assignment(
            session, assignment, data, actor=current_subject(), now=utcnow()
        )


@blp.route("/<uuid:assignment_id>/revoke")
class Revoke(MethodView):
    @requires("certifications:update", module="hse")
    @blp.arguments(RevokeSchema)
    @blp.response(200, AssignmentSchema)
    def post(self, data: dict[str, Any], assignment_id: uuid.UUID) -> Any:
        """Revoke with a documented reason (records who and when)."""
        session = request_session()
        assignment = service.get_assignment(session, assignment_id)
        return service.revoke_assignment(
            session, assignment, data["reason"], actor=current_subject(), now=utcnow()
        )


@blp.route("/<uuid:assignment_id>/form-submissions")
class FormSubmissions(MethodView):
    @requires("certifications:update", module="hse")
    @blp.arguments(FormSubmissionCreateSchema)
    @blp.response(201, FormSubmissionSchema)
    def post(self, data: dict[str, Any], assignment_id: uuid.UUID) -> Any:
        """Submit the certification's form; an accepted submission records the certification."""
        session = request_session()
        assignment = service.get_assignment(session, assignment_id)
        return service.submit_form(
            session, assignment, data["answers"], actor=current_subject(), now=utcnow()
        )


@blp.route("/<uuid:assignment_id>/history")
class History(MethodView):
    @requires("certifications:read", module="hse")
    @blp.response(200, HistorySchema)
    def get(self, assignment_id: uuid.UUID) -> Any:
        """Every cycle, status change and form submission of the assignment."""
        session = request_session()
        return service.history(session, service.get_assignment(session, assignment_id))
