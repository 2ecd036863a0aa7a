"""`GET /metrics`: Prometheus text format, outside the versioned API (where scrapers look)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app
from prometheus_flask_exporter import PrometheusMetrics

from api.metrics import render

blp = Blueprint("metrics", __name__)


@blp.get("/metrics")
@PrometheusMetrics.do_not_track()  # scrapes are not traffic (the exporter's own convention)
def metrics() -> Response:
    """Request metrics (all gunicorn workers), outbox backlog, jobs, notifications."""
    body, content_type = render(current_app)
    return Response(body, content_type=content_type)
