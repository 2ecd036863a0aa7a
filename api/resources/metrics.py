"""`GET /metrics`: Prometheus text format, outside the versioned API (where scrapers look)."""

from __future__ import annotations

from flask import Blueprint, Response

from api.metrics import render

blp = Blueprint("metrics", __name__)


@blp.get("/metrics")
def metrics() -> Response:
    """Request counts and latency (all gunicorn workers), outbox backlog, jobs, notifications."""
    body, content_type = render()
    return Response(body, content_type=content_type)
