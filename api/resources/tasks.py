"""Renewal tasks (SPEC §5): list them, reassign, reschedule, annotate, complete or cancel them."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.db import request_session
from api.pagination import page_schema, paginate
from api.schemas.automation import TaskListArgs, TaskPatchSchema, TaskSchema
from certifications.automation.tasks import get_task, update_task
from certifications.reporting.listings import tasks_query
from certifications.reporting.names import attach_names
from tenancy.auth import current_subject, requires

blp = Blueprint("tasks", __name__, url_prefix="/tasks", description="Renewal tasks")


@blp.route("")
class Tasks(MethodView):
    @requires("certifications:read", module="hse")
    @blp.arguments(TaskListArgs, location="query")
    @blp.response(200, page_schema(TaskSchema))
    def get(self, args: dict[str, Any]) -> Any:
        """Tasks by due date; filter by status, assignee, assignment, certification, subject,
        due before a date."""
        stmt, keys = tasks_query(args)
        session = request_session()
        return attach_names(
            session, paginate(session, stmt, keys, args["limit"], args.get("cursor"))
        )


@blp.route("/<uuid:task_id>")
class TaskResource(MethodView):
    @requires("certifications:read", module="hse")
    @blp.response(200, TaskSchema)
    def get(self, task_id: uuid.UUID) -> Any:
        """One task."""
        session = request_session()
        return attach_names(session, get_task(session, task_id))

    @requires("certifications:update", module="hse")
    @blp.arguments(TaskPatchSchema)
    @blp.response(200, TaskSchema)
    def patch(self, data: dict[str, Any], task_id: uuid.UUID) -> Any:
        """Change any of assignee_id, status (open, done, cancelled), due_on, note."""
        session = request_session()
        return attach_names(session, update_task(session, task_id, data, current_subject()))
