"""The request's session and its single commit owner (Flask side of `infra.database`).

Auth looks the token's organization up in this same session, after setting the tenant, so a
request costs one pooled connection and one transaction, not two (and none of its own when
`tenancy.org_cache` still holds the organization). The session comes from the
factory `init_request_sessions(app, factory)` was given (the app's bootstrap), and refuses to
open before a tenant or an explicit platform context is set.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from flask import Flask, current_app, g, request
from sqlalchemy import Engine, Executable, event
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker
from sqlalchemy.sql.elements import TextClause

from infra.context import current_org_id, in_platform_context
from tenancy import driver_reads
from tenancy.scoping import prebuilt_params, set_rls_tenant

log = logging.getLogger("certs.api")

_FACTORY_KEY = "certs.sessions"


class NoTenant(RuntimeError):
    """A request asked for the database before saying whose data it touches."""


def open_request_session() -> Session | None:
    """The request's session if something opened it (auth, when its cache had no
    organization), else None; never creates one."""
    session: Session | None = g.get("db_session")
    return session


def tenant_rows(statement: Executable, params: Mapping[str, Any] | None = None) -> Sequence[Any]:
    """The rows of one read statement, run as the tenant without an ORM session: on the
    request's session's connection when one is open, else on a Core connection of its own in
    a transaction that is this statement alone (BEGIN with the tenant for row-level security,
    the statement, ROLLBACK: one round trip on PostgreSQL, infra/pg_begin.py). A session's
    creation, transaction bookkeeping and close were an eighth of a `GET /org`'s CPU, the two
    round trips around its statement a third of its database CPU. A plain `Select` of columns
    runs on the psycopg cursor itself, compiled once (`tenancy.driver_reads`: SQLAlchemy's
    execution was more of the request's CPU than the rest of it); its rows are named tuples,
    as a `Row` reads (attributes, `_asdict()`). Tenant context only: the platform's reads go
    through sessions. A dropped pooled connection is discarded and the read goes through
    SQLAlchemy; there, a dead connection fails the statement and is flagged stale as in a
    session (`infra.database.mark_stale_connections`), so the request runs again.
    """
    org_id = current_org_id()
    if org_id is None or in_platform_context():
        raise NoTenant("a tenant reader needs a tenant, and only a tenant")
    session = open_request_session()
    if session is not None:
        return session.connection().execute(statement, params).all()
    engine = _engine()
    found = driver_reads.plan(engine, statement) if driver_reads.enabled else None
    if found is not None:
        rows = driver_reads.driver_rows(engine, found, params, org_id)
        if rows is not None:
            return rows
    with engine.connect() as connection:
        set_rls_tenant(connection, org_id, single=True)
        return connection.execute(statement, params).all()


def tenant_prebuilt_rows(statement: Executable, params: Mapping[str, Any]) -> Sequence[Any]:
    """`tenant_rows` of a `prebuilt_tenant_statement`, its tenant parameter bound to the
    current organization (as `run_prebuilt` binds it; `params` cannot name another)."""
    return tenant_rows(statement, prebuilt_params(params))


def request_dialect_name() -> str:
    """The name of the database dialect the request's sessions and readers use."""
    return _engine().dialect.name


def _engine() -> Engine:
    """The engine of the request's sessions (the app's factory's bind)."""
    factory: sessionmaker[Session] = current_app.extensions[_FACTORY_KEY]
    engine: Engine = factory.kw["bind"]
    return engine


def request_session() -> Session:
    """The session of the current request, created on first use (after auth set the tenant)."""
    if "db_session" not in g:
        if current_org_id() is None and not in_platform_context():
            raise NoTenant("a request session needs a tenant or the platform context")
        factory: sessionmaker[Session] = current_app.extensions[_FACTORY_KEY]
        g.db_session = factory()
    session: Session = g.db_session
    return session


READ_ONLY_METHODS = ("GET", "HEAD")
_WROTE = "certs_wrote"  # session.info: the transaction flushed or ran a statement that writes


def commit_request() -> None:
    """Commit the request's transaction. A GET or HEAD that wrote nothing is not committed:
    the session's close rolls it back, which costs the same round trip without the commit's
    work (flush, commit hooks). A GET that writes (e.g. a job it starts) commits as before."""
    session = g.get("db_session")
    if session is None:
        return
    if request.method in READ_ONLY_METHODS and not wrote(session):
        return
    session.commit()


def wrote(session: Session) -> bool:
    """The session has changes, flushed some, or ran a statement that may write."""
    return bool(session.new or session.dirty or session.deleted or session.info.get(_WROTE))


def _note_flush(session: Session, _ctx: Any) -> None:
    session.info[_WROTE] = True


def _note_statement(state: ORMExecuteState) -> None:
    """Anything but a SELECT may write: INSERT/UPDATE/DELETE, and text SQL other than SELECT
    and transaction-local settings (`SET LOCAL jit = off`)."""
    if state.is_select:
        return
    statement = state.statement
    if isinstance(statement, TextClause):
        head = statement.text.lstrip()[:10].upper()
        if head.startswith(("SELECT", "SET LOCAL")):
            return
    state.session.info[_WROTE] = True


def _forget(session: Session, *_args: Any) -> None:
    session.info.pop(_WROTE, None)


def discard_request_session() -> None:
    """Roll back and drop the request's session: the next `request_session()` starts afresh."""
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


def init_request_sessions(app: Flask, factory: sessionmaker[Session]) -> None:
    app.extensions[_FACTORY_KEY] = factory
    if not event.contains(factory, "after_flush", _note_flush):
        event.listen(factory, "after_flush", _note_flush)
        event.listen(factory, "do_orm_execute", _note_statement)
        event.listen(factory, "after_commit", _forget)
        event.listen(factory, "after_rollback", _forget)

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
