"""Pollable jobs: fan-out, bulk imports, recomputation (SPEC §5)."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.db import request_session
from api.schemas.jobs import JobSchema
from infra.database import get_or_not_found
from jobs.models import Job
from tenancy.auth import requires

blp = Blueprint("jobs", __name__, url_prefix="/jobs", description="Background jobs")


@blp.route("/<uuid:job_id>")
class JobResource(MethodView):
    @requires(("certifications:read", "directory:read"))
    @blp.response(200, JobSchema)
    def get(self, job_id: uuid.UUID) -> Any:
        """State and progress of a job started by an earlier request."""
        return get_or_not_found(request_session(), Job, job_id, "job")
