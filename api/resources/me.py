"""Self-service: a worker's own profile, assignments and submissions (tokens with `self`)."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from api.db import request_session
from api.pagination import PageArgs, page_schema, paginate
from api.resources.submissions import submit
from api.schemas.assignments import AssignmentSchema
from api.schemas.evidence import SUBMISSION_BODY, MeSchema, SubmissionSchema
from certifications.assignments.models import Assignment
from certifications.directory.models import Employee
from infra.errors import Forbidden, NotFound
from tenancy.auth import SELF_SCOPE, current_subject, requires

blp = Blueprint("me", __name__, url_prefix="/me", description="Self-service for workers")


def me() -> Employee:
    """The active employee whose `user_sub` is the token's `sub` (403 if none)."""
    employee = request_session().scalar(
        select(Employee).where(Employee.user_sub == current_subject())
    )
    if employee is None or not employee.active:
        raise Forbidden(
            "No active employee of this organization has this token's subject as user_sub.",
            errors={"sub": ["Not linked to an active employee."]},
        )
    return employee


def own_assignments(employee: Employee) -> Any:
    return select(Assignment).where(
        Assignment.subject_type == "employee", Assignment.subject_id == employee.id
    )


@blp.route("")
class Me(MethodView):
    @requires(SELF_SCOPE, module="hse")
    @blp.response(200, MeSchema)
    def get(self) -> Any:
        """The employee this token belongs to."""
        return me()


@blp.route("/assignments")
class MyAssignments(MethodView):
    @requires(SELF_SCOPE, module="hse")
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, page_schema(AssignmentSchema))
    def get(self, args: dict[str, Any]) -> Any:
        """My assignments with their statuses (and any submission waiting for review)."""
        stmt = own_assignments(me())
        keys = [Assignment.created_at, Assignment.id]
        return paginate(request_session(), stmt, keys, args["limit"], args.get("cursor"))


@blp.route("/assignments/<uuid:assignment_id>/submissions")
class MySubmissions(MethodView):
    takes_upload = True
    created_location = "/submissions/{id}"  # the reviewers' view of it

    @requires(SELF_SCOPE, module="hse")
    @blp.doc(requestBody=SUBMISSION_BODY)
    @blp.response(201, SubmissionSchema)
    def post(self, assignment_id: uuid.UUID) -> Any:
        """Submit my certificate (dates, form answers, `file` parts) for review."""
        employee = me()
        assignment = request_session().scalar(
            own_assignments(employee).where(Assignment.id == assignment_id)
        )
        if assignment is None:
            raise NotFound("assignment", assignment_id)
        return submit(assignment, employee_id=employee.id)
