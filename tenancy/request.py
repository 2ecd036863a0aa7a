"""The request's session and its single commit owner (Flask side of `infra.database`).

Auth looks the token's organization up in this same session, after setting the tenant, so a
request costs one pooled connection and one transaction, not two (and none of its own when
`tenancy.org_cache` still holds the organization). The session comes from the
factory `init_request_sessions(app, factory)` was given (the app's bootstrap), and refuses to
open before a tenant or an explicit platform context is set.
"""

from __future__ import annotations

import logging

from flask import Flask, current_app, g
from sqlalchemy.orm import Session, sessionmaker

from infra.context import current_org_id, in_platform_context

log = logging.getLogger("certs.api")

_FACTORY_KEY = "certs.sessions"


class NoTenant(RuntimeError):
    """A request asked for the database before saying whose data it touches."""


def request_session() -> Session:
    """The session of the current request, created on first use (after auth set the tenant)."""
    if "db_session" not in g:
        if current_org_id() is None and not in_platform_context():
            raise NoTenant("a request session needs a tenant or the platform context")
        factory: sessionmaker[Session] = current_app.extensions[_FACTORY_KEY]
        g.db_session = factory()
    session: Session = g.db_session
    return session


def commit_request() -> None:
    session = g.get("db_session")
    if session is not None:
        session.commit()


def discard_request_session() -> None:
    """Roll back and drop the request's session: the next `request_session()` starts afresh."""
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


def init_request_sessions(app: Flask, factory: sessionmaker[Session]) -> None:
    app.extensions[_FACTORY_KEY] = factory

    @app.teardown_request
    def _close(_exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            try:
                session.close()  # rolls back anything not committed
            except Exception:
                # The answer is decided (maybe a commit's 201): closing must not turn it into
                # a 500. The pool discards a connection it could not reset.
                log.exception("closing the request's session failed")
