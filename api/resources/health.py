"""Liveness and readiness probes (outside the versioned API, for Kubernetes)."""

from __future__ import annotations

import dramatiq
from flask import Blueprint, Response, jsonify
from sqlalchemy import text

from infra import database as db

blp = Blueprint("health", __name__)


@blp.get("/healthz")
def healthz() -> Response:
    """The process is alive."""
    return jsonify(status="ok")


@blp.get("/readyz")
def readyz() -> Response:
    """The database and the broker are reachable."""
    checks: dict[str, str] = {}
    try:
        with db.get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready
        checks["database"] = f"error: {type(exc).__name__}"
    checks["broker"] = _broker_status()
    ready = all(v == "ok" for v in checks.values())
    resp = jsonify(status="ok" if ready else "unavailable", checks=checks)
    resp.status_code = 200 if ready else 503
    return resp


def _broker_status() -> str:
    broker = dramatiq.get_broker()
    client = getattr(broker, "client", None)
    if client is None:
        return "ok"  # in-process broker
    try:
        client.ping()
        return "ok"
    except Exception as exc:  # redis down
        return f"error: {type(exc).__name__}"
