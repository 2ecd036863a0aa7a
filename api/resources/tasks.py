"""Renewal tasks (SPEC §5): list them, complete them."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.db import request_session
from api.pagination import page_schema, paginate
from api.schemas.automation import TaskListArgs, TaskPatchSchema, TaskSchema
from certifications.automation.tasks import get_task, set_task_status
from certifications.reporting.listings import tasks_query
from tenancy.auth import current_subject, requires

blp = Blueprint("tasks", __name__, url_prefix="/tasks", description="Renewal tasks")


@blp.route("")
class Tasks(MethodView):
    @requires("certifications:read", module="hse")
    @blp.arguments(TaskListArgs, location="query")
    @blp.response(200, page_schema(TaskSchema))
    def get(self, args: dict[str, Any]) -> Any:
        """Tasks by due date; filter by status, assignee, assignment, due before a date."""
        stmt, keys = tasks_query(args)
        return paginate(request_session(), stmt, keys, args["limit"], args.get("cursor"))


@blp.route("/<uuid:task_id>")
class TaskResource(MethodView):
    @requires("certifications:read", module="hse")
    @blp.response(200, TaskSchema)
    def get(self, task_id: uuid.UUID) -> Any:
        """One task."""
        return get_task(request_session(), task_id)

    @requires("certifications:update", module="hse")
    @blp.arguments(TaskPatchSchema)
    @blp.response(200, TaskSchema)
    def patch(self, data: dict[str, Any], task_id: uuid.UUID) -> Any:
        """Complete (`{"status": "done"}`) or reopen a task."""
        return set_task_status(request_session(), task_id, data["status"], current_subject())
