"""Engine, declarative base and the session factory shared by the API, workers and CLI."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    MetaData,
    Table,
    TypeDecorator,
    Uuid,
    create_engine,
    event,
    func,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from infra import db_errors
from infra.errors import NotFound
from infra.pg_begin import BeginWithConnection
from infra.settings import Settings

T = TypeVar("T")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and always read back timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        # PostgreSQL's timestamptz always reads back aware: no per-value Python call (a list
        # page of 50 rows made 100 of them).
        if dialect.name == "postgresql":
            return None
        return super().result_processor(dialect, coltype)


class Base(DeclarativeBase):
    # Every model here is mapped to a Table (none to a join or subquery), so `Model.__table__`
    # is typed as one: DeclarativeBase types it as the general FromClause, which insert/update/
    # delete and `.c.<column>.type` do not accept.
    __table__: ClassVar[Table]

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        dict[str, Any]: JSON,
        list[Any]: JSON,
        uuid.UUID: Uuid,
        datetime: UTCDateTime,
    }


def check_in(column: str, values: Iterable[str], name: str | None = None) -> CheckConstraint:
    """`CHECK (column IN ('a', 'b', ...))`, named `name` (default: the column's name)."""
    listed = ", ".join(f"'{value}'" for value in values)
    return CheckConstraint(f"{column} IN ({listed})", name=name or column)


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, server_default=func.now()
    )


class _Registry:
    """The process's engine and session factory, set once by `runtime.bootstrap`."""

    engine: Engine | None = None
    factory: sessionmaker[Session] | None = None


registry = _Registry()


def make_engine(settings: Settings) -> Engine:
    url = settings.database_url
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "savepoint")
        def _savepoint_inside_a_transaction(conn: Any, _name: str) -> None:
            # pysqlite opens a transaction only before a data change, so after mere reads the
            # session's SAVEPOINT would itself start the transaction and its RELEASE would
            # commit it: half a unit of work visible to the worker and kept on a later
            # rollback. Open the real one first (IMMEDIATE: a write follows; wait for the lock).
            dbapi_conn = conn.connection.dbapi_connection
            if not dbapi_conn.in_transaction:
                dbapi_conn.execute("BEGIN IMMEDIATE")

        return engine
    engine = create_engine(
        url,
        # No pre-ping on every checkout: it cost every request a round trip (5% of an API
        # request's time). `ping_idle_connections` pings only a connection that sat in the
        # pool longer than IDLE_PING_S (LIFO keeps the busy ones busy); one the server dropped
        # since fails its first statement instead, which `mark_stale_connections` flags so the
        # request runs again on a fresh one (`api.unit_of_work`).
        pool_pre_ping=False,
        pool_use_lifo=True,
        pool_recycle=POOL_RECYCLE_S,
        pool_size=10,
        max_overflow=10,
        connect_args={"options": f"-c statement_timeout={settings.statement_timeout_ms}"},
    )
    mark_stale_connections(engine)
    ping_idle_connections(engine)

    @event.listens_for(engine, "do_connect")
    def _begin_with_connection(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        # psycopg connections that can send a transaction's opening statement (the tenant
        # for row-level security) with its BEGIN (infra/pg_begin.py).
        return BeginWithConnection.connect(*cargs, **cparams)

    return engine


POOL_RECYCLE_S = 600
IDLE_PING_S = 0.2
_CHECKED_IN = "certs_checked_in"  # connection record info: monotonic time of its last checkin


def ping_idle_connections(engine: Engine) -> None:
    """Ping a pooled connection on checkout when it sat idle over IDLE_PING_S (a restart or a
    failover while nobody used it); a dead one is replaced before anyone uses it. A connection
    in steady use is handed out without a round trip."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info[_CHECKED_IN] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_CHECKED_IN)
        if since is None or time.monotonic() - since < IDLE_PING_S:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            if engine.dialect.is_disconnect(exc, dbapi_conn, None):
                raise DisconnectionError from exc  # the pool connects afresh
            raise


_USED = "certs_used"  # connection record info: a statement ran since checkout
_FIRST = "certs_first"  # ... and the statement running now is the first one


def mark_stale_connections(engine: Engine) -> None:
    """Flag (`infra.db_errors.is_stale_connection`) a disconnect met by the first statement
    of a connection since it left the pool: nothing of its transaction reached the server."""

    @event.listens_for(engine, "checkout")
    def _checked_out(_dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        record.info[_USED] = False

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Any, *_args: Any) -> None:
        info = conn.info
        info[_FIRST] = not info.get(_USED, False)
        info[_USED] = True

    @event.listens_for(engine, "handle_error")
    def _failed(context: Any) -> None:
        if not context.is_disconnect or context.connection is None:
            return
        try:
            first = context.connection.info.get(_FIRST, False)
        except Exception:  # noqa: BLE001 - an invalidated connection: no flag, no retry
            return
        if first:
            setattr(context.original_exception, db_errors.BEFORE_ANY_STATEMENT, True)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A factory of plain sessions; `runtime.bootstrap` installs scoping, audit and relay on it."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def use(engine: Engine, factory: sessionmaker[Session]) -> None:
    """Make these the process's engine and factory (disposing a previous, different engine)."""
    if registry.engine is not None and registry.engine is not engine:
        registry.engine.dispose()
    registry.engine = engine
    registry.factory = factory


def new_session() -> Session:
    if registry.factory is None:
        raise RuntimeError("database not configured: call runtime.bootstrap(settings) first")
    return registry.factory()


def get_engine() -> Engine:
    if registry.engine is None:
        raise RuntimeError("database not configured: call runtime.bootstrap(settings) first")
    return registry.engine


def without_jit(session: Session) -> None:
    """Turn PostgreSQL's JIT off for this transaction (reporting queries call this first).

    Their statements are short or simple aggregates, but their cost estimates (a correlated
    probe per row, a rare filter under a LIMIT) cross `jit_above_cost`, and compiling then
    takes ~1 s for a query that runs in milliseconds (measured: 921 ms of 1,069 ms).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL jit = off"))


# `session.info` flag: `get_or_not_found` locks the rows it loads (SELECT ... FOR UPDATE) until
# the transaction ends; set while a conditional write compares `If-Match` (`api.preconditions`).
LOCK_LOADED_ROWS = "lock_loaded_rows"


def get_or_not_found(session: Session, model: type[T], ident: Any, what: str) -> T:
    """The `model` row with this id (in the session's tenant), or `NotFound` naming `what`."""
    if session.info.get(LOCK_LOADED_ROWS):
        row = session.get(model, ident, with_for_update=True, populate_existing=True)
    else:
        row = session.get(model, ident)
    if row is None:
        raise NotFound(what, ident)
    return row
