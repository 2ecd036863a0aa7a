"""Liveness and readiness probes (outside the versioned API, for Kubernetes)."""

from __future__ import annotations

import dramatiq
from flask import Blueprint, Response, jsonify
from sqlalchemy import text

from infra import context
from infra import database as db

blp = Blueprint("health", __name__)


@blp.get("/healthz")
def healthz() -> Response:
    """The process is alive."""
    return jsonify(status="ok")


@blp.get("/readyz")
def readyz() -> Response:
    """The database and the broker are reachable (and the database accepts our platform key)."""
    checks: dict[str, str] = {}
    try:
        with db.get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready
        checks["database"] = f"error: {type(exc).__name__}"
    if checks["database"] == "ok" and db.get_engine().dialect.name == "postgresql":
        checks["platform_key"] = _platform_key_status()
    checks["broker"] = _broker_status()
    ready = all(v == "ok" for v in checks.values())
    resp = jsonify(status="ok" if ready else "unavailable", checks=checks)
    resp.status_code = 200 if ready else 503
    return resp


def _platform_key_status() -> str:
    """Whether RLS admits this process's platform work (the outbox relay, the scheduler).

    A DB_PLATFORM_KEYS the last `certs db upgrade` did not store would leave every platform
    transaction seeing no other organization's rows: jobs would silently never be relayed.
    """
    try:
        with context.platform(), db.new_session() as session:
            accepted = session.scalar(text("SELECT certs_platform(current_user, session_user)"))
    except Exception as exc:  # e.g. the database is behind migration 0010
        return f"error: {type(exc).__name__}"
    if accepted:
        return "ok"
    return "error: DB_PLATFORM_KEYS not accepted (run `certs db upgrade` with these keys)"


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
