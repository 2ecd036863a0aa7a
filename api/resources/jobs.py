"""Pollable jobs: fan-out, bulk imports, recomputation (SPEC §5)."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.db import request_session
from api.schemas.jobs import JobSchema
from infra.errors import NotFound
from jobs.models import Job
from tenancy.auth import requires

blp = Blueprint("jobs", __name__, url_prefix="/jobs", description="Background jobs")


@blp.route("/<uuid:job_id>")
class JobResource(MethodView):
    @requires(("certifications:read", "directory:read"))
    @blp.response(200, JobSchema)
    def get(self, job_id: uuid.UUID) -> Any:
        """State and progress of a job started by an earlier request."""
        job = request_session().get(Job, job_id)
        if job is None:
            raise NotFound("job", job_id)
        return job
