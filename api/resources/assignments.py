"""Assignments: a certification record of one subject (SPEC §4, §9)."""

from __future__ import annotations

import uuid
from typing import Any

from flask import jsonify
from flask.views import MethodView
from flask_smorest import Blueprint

from api.db import request_session
from api.pagination import page_schema, paginate
from api.resources.documents import settings as document_settings
from api.resources.documents import store as document_store
from api.schemas.assignments import (
    AssignmentBulkArgsSchema,
    AssignmentBulkReportSchema,
    AssignmentBulkSchema,
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
    SnoozeRequestSchema,
)
from api.schemas.evidence import SubmissionSchema
from certifications.assignments import exemptions, service
from certifications.assignments import snooze as snoozes
from certifications.assignments.bulk import bulk_assignments
from certifications.catalog import forms
from certifications.catalog.service import get_certification
from certifications.evidence import submissions
from certifications.reporting.listings import assignments_query
from certifications.reporting.names import attach_names, names_by_assignment
from infra.database import utcnow
from tenancy.auth import current_subject, require_scope, requires

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
        session = request_session()
        return attach_names(
            session, paginate(session, stmt, keys, args["limit"], args.get("cursor"))
        )

    @requires("certifications:create", module="hse")
    @blp.arguments(AssignmentCreateSchema)
    @blp.response(201, AssignmentSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Assign a certification to an employee, asset, client or location."""
        session = request_session()
        assignment = service.create_assignment(session, data, actor=current_subject(), now=utcnow())
        return attach_names(session, assignment)


@blp.route("/bulk")
class Bulk(MethodView):
    @requires("certifications:update", module="hse")
    @blp.arguments(AssignmentBulkArgsSchema, location="query")
    @blp.arguments(AssignmentBulkSchema)
    @blp.response(200, AssignmentBulkReportSchema)
    def post(self, args: dict[str, Any], data: dict[str, Any]) -> Any:
        """Assign, renew or revoke one certification for up to 10,000 subjects at once.

        `assign` also needs `certifications:create`."""
        if data["action"] == "assign":
            require_scope("certifications:create")
        report = bulk_assignments(
            request_session(), data, atomic=args["atomic"], actor=current_subject(), now=utcnow()
        )
        # Already plain JSON types: skip a 10,000-row marshmallow dump (the schema documents).
        return jsonify(report)


@blp.route("/<uuid:assignment_id>")
class AssignmentResource(MethodView):
    @requires("certifications:read", module="hse")
    @blp.response(200, AssignmentSchema)
    def get(self, assignment_id: uuid.UUID) -> Any:
        """One assignment with its stored status."""
        session = request_session()
        return attach_names(session, service.get_assignment(session, assignment_id))

    @requires("certifications:update", module="hse")
    @blp.arguments(AssignmentPatchSchema)
    @blp.response(200, AssignmentSchema)
    def patch(self, changes: dict[str, Any], assignment_id: uuid.UUID) -> Any:
        """Correct the current cycle's dates or notes (expiry follows unless given)."""
        session = request_session()
        assignment = service.get_assignment(session, assignment_id)
        updated = service.update_assignment(session, assignment, changes, now=utcnow())
        return attach_names(session, updated)

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
        exempted = exemptions.exempt(
            session,
            assignment,
            data["reason"],
            data["until"],
            actor=current_subject(),
            now=utcnow(),
        )
        return attach_names(session, exempted)

    @requires("certifications:delete", module="hse")  # SPEC §3: DELETE takes the delete scope
    @blp.response(200, AssignmentSchema)
    def delete(self, assignment_id: uuid.UUID) -> Any:
        """Lift the exemption: the assignment counts again (without one, changes nothing)."""
        session = request_session()
        assignment = service.get_assignment(session, assignment_id)
        return attach_names(session, exemptions.lift(session, assignment, now=utcnow()))


@blp.route("/<uuid:assignment_id>/snooze")
class Snooze(MethodView):
    @requires("certifications:update", module="hse")
    @blp.arguments(SnoozeRequestSchema)
    @blp.response(200, AssignmentSchema)
    def post(self, data: dict[str, Any], assignment_id: uuid.UUID) -> Any:
        """Pause the assignment's reminders until `until` (sets or replaces `snooze`).

        Its status is still computed and shown; no reminder is created, queued or put in a
        digest for it until that day, when the reminders due then resume."""
        session = request_session()
        assignment = service.get_assignment(session, assignment_id)
        snoozed = snoozes.snooze(
            session,
            assignment,
            data["until"],
            data["reason"],
            actor=current_subject(),
            now=utcnow(),
        )
        return attach_names(session, snoozed)

    @requires("certifications:delete", module="hse")  # SPEC §3: DELETE takes the delete scope
    @blp.response(200, AssignmentSchema)
    def delete(self, assignment_id: uuid.UUID) -> Any:
        """End the snooze now: the reminders due today resume (without one, changes nothing)."""
        session = request_session()
        assignment = service.get_assignment(session, assignment_id)
        return attach_names(session, snoozes.wake(session, assignment, now=utcnow()))


@blp.route("/<uuid:assignment_id>/renew")
class Renew(MethodView):
    @requires("certifications:update", module="hse")
    @blp.arguments(RenewSchema)
    @blp.response(200, AssignmentSchema)
    def post(self, data: dict[str, Any], assignment_id: uuid.UUID) -> Any:
        """Record a new cycle; the previous one stays in the history."""
        session = request_session()
        assignment = service.get_assignment(session, assignment_id)
        renewed = service.renew_assignment(
            session, assignment, data, actor=current_subject(), now=utcnow()
        )
        return attach_names(session, renewed)


@blp.route("/<uuid:assignment_id>/revoke")
class Revoke(MethodView):
    @requires("certifications:update", module="hse")
    @blp.arguments(RevokeSchema)
    @blp.response(200, AssignmentSchema)
    def post(self, data: dict[str, Any], assignment_id: uuid.UUID) -> Any:
        """Revoke with a documented reason (records who and when)."""
        session = request_session()
        assignment = service.get_assignment(session, assignment_id)
        revoked = service.revoke_assignment(
            session, assignment, data["reason"], actor=current_subject(), now=utcnow()
        )
        return attach_names(session, revoked)


@blp.route("/<uuid:assignment_id>/form-submissions")
class FormSubmissions(MethodView):
    created_location = "/assignments/{assignment_id}/history"  # the recorded cycle

    @requires("certifications:update", module="hse")
    @blp.arguments(FormSubmissionCreateSchema)
    @blp.response(201, FormSubmissionSchema)
    @blp.alt_response(
        202,
        schema=SubmissionSchema,
        description="The certification needs review (`review_required`, or `forms_required`): "
        "the answers wait in the review queue as a pending submission",
    )
    def post(self, data: dict[str, Any], assignment_id: uuid.UUID) -> Any:
        """Submit the certification's form; an accepted submission records the certification.

        When the certification needs review (`review_required`, which `forms_required`
        implies) nothing is recorded yet: the answers become a pending submission (202) that a
        reviewer approves (`POST /submissions/{id}/approve`, which accepts them and records the
        cycle) or rejects."""
        session = request_session()
        assignment = service.get_assignment(session, assignment_id)
        cert = get_certification(session, assignment.certification_id)
        if cert.needs_review and forms.form_fields(cert.form):
            s = document_settings()
            pending = submissions.submit(
                session,
                document_store(),
                assignment,
                {"answers": data["answers"]},
                [],
                actor=current_subject(),
                now=utcnow(),
                max_bytes=s.document_max_bytes,
                quota_bytes=s.document_org_quota_bytes,
            )
            response = jsonify(SubmissionSchema().dump(pending))
            response.status_code = 202
            return response
        submission = service.submit_form(
            session, assignment, data["answers"], actor=current_subject(), now=utcnow()
        )
        return attach_names(session, submission)


@blp.route("/<uuid:assignment_id>/history")
class History(MethodView):
    @requires("certifications:read", module="hse")
    @blp.response(200, HistorySchema)
    def get(self, assignment_id: uuid.UUID) -> Any:
        """Every cycle, status change and form submission of the assignment."""
        session = request_session()
        found = service.history(session, service.get_assignment(session, assignment_id))
        names = vars(names_by_assignment(session, [assignment_id])[assignment_id])
        for entry in [*found["cycles"], *found["status_events"], *found["form_submissions"]]:
            if isinstance(entry, dict):
                entry.update(names)
            else:
                for key, value in names.items():
                    setattr(entry, key, value)
        return found | names
