"""Submissions and the review queue: record a cycle for review, approve it, reject it."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.db import request_session
from api.pagination import page_schema, paginate
from api.resources.documents import settings, store
from api.schemas.evidence import (
    SUBMISSION_BODY,
    RejectSchema,
    SubmissionFormSchema,
    SubmissionListArgs,
    SubmissionSchema,
)
from api.uploads import file_parts, form_data
from certifications.assignments import service as assignments
from certifications.assignments.models import Assignment
from certifications.evidence import submissions
from certifications.evidence.models import Submission
from infra.database import utcnow
from tenancy.auth import current_subject, requires

blp = Blueprint("submissions", __name__, url_prefix="", description="Submissions and review")

REVIEW = "certifications:review"


def submit(assignment: Assignment, employee_id: uuid.UUID | None = None) -> Submission:
    """Parse the multipart body and submit it (shared by /assignments and /me)."""
    data = form_data(SubmissionFormSchema)
    uploads = file_parts(required=False)
    s = settings()
    return submissions.submit(
        request_session(),
        store(),
        assignment,
        data,
        uploads,
        actor=current_subject(),
        now=utcnow(),
        max_bytes=s.document_max_bytes,
        quota_bytes=s.document_org_quota_bytes,
        employee_id=employee_id,
    )


@blp.route("/assignments/<uuid:assignment_id>/submissions")
class AssignmentSubmissions(MethodView):
    takes_upload = True
    created_location = "/submissions/{id}"

    @requires("certifications:update", module="hse")
    @blp.doc(requestBody=SUBMISSION_BODY)
    @blp.response(201, SubmissionSchema)
    def post(self, assignment_id: uuid.UUID) -> Any:
        """Record a cycle (dates, form answers, `file` parts) for someone: it waits for review
        when the certification has `review_required` (or `forms_required`), else it is
        approved at once."""
        assignment = assignments.get_assignment(request_session(), assignment_id)
        return submit(assignment)


@blp.route("/submissions")
class Queue(MethodView):
    @requires(REVIEW, module="hse")
    @blp.arguments(SubmissionListArgs, location="query")
    @blp.response(200, page_schema(SubmissionSchema))
    def get(self, args: dict[str, Any]) -> Any:
        """The review queue, oldest first: filter by status, certification, location."""
        stmt, keys = submissions.queue_query(args)
        return paginate(request_session(), stmt, keys, args["limit"], args.get("cursor"))


@blp.route("/submissions/<uuid:submission_id>")
class SubmissionResource(MethodView):
    @requires(REVIEW, module="hse")
    @blp.response(200, SubmissionSchema)
    def get(self, submission_id: uuid.UUID) -> Any:
        """One submission (its documents: GET /assignments/{id}/documents)."""
        return submissions.get_submission(request_session(), submission_id)


@blp.route("/submissions/<uuid:submission_id>/approve")
class Approve(MethodView):
    @requires(REVIEW, module="hse")
    @blp.response(200, SubmissionSchema)
    def post(self, submission_id: uuid.UUID) -> Any:
        """Approve: the cycle is recorded as a renewal and the documents attach to it."""
        session = request_session()
        submission = submissions.get_submission(session, submission_id)
        return submissions.approve(session, submission, actor=current_subject(), now=utcnow())


@blp.route("/submissions/<uuid:submission_id>/reject")
class Reject(MethodView):
    @requires(REVIEW, module="hse")
    @blp.arguments(RejectSchema)
    @blp.response(200, SubmissionSchema)
    def post(self, data: dict[str, Any], submission_id: uuid.UUID) -> Any:
        """Reject with a reason the submitter is told; the assignment stays as it was."""
        session = request_session()
        submission = submissions.get_submission(session, submission_id)
        return submissions.reject(
            session, submission, data["reason"], actor=current_subject(), now=utcnow()
        )
