"""The request's session and its single commit owner (Flask side of `infra.database`).

Auth looks the token's organization up in this same session, after setting the tenant, so a
request costs one pooled connection and one transaction, not two.
"""

from __future__ import annotations

from flask import Flask, g
from sqlalchemy.orm import Session

from infra import database as db


def request_session() -> Session:
    """The session of the current request, created on first use (after auth set the tenant)."""
    if "db_session" not in g:
        g.db_session = db.new_session()
    return g.db_session


def commit_request() -> None:
    session = g.get("db_session")
    if session is not None:
        session.commit()


def init_request_sessions(app: Flask) -> None:
    @app.teardown_request
    def _close(_exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.close()  # rolls back anything not committed
