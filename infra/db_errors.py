"""What a database error means for its caller, read from its SQLSTATE.

psycopg raises deadlocks, serialization failures and statement timeouts as subclasses of
`OperationalError`, like a lost connection; SQLAlchemy wraps them all in its own
`OperationalError`. The class alone cannot tell "retry this transaction", "this statement ran
too long" and "the database is gone" apart: the SQLSTATE can.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

SERIALIZATION_FAILURE = "40001"
DEADLOCK_DETECTED = "40P01"
QUERY_CANCELED = "57014"  # statement_timeout, or pg_cancel_backend
# The server going away or refusing connections: admin/crash shutdown, starting up, too many
# connections. (Class 08 is "connection exception" as a whole.)
_GONE = frozenset({"57P01", "57P02", "57P03", "53300"})
# Transaction rollbacks the server asks the client to simply run again.
RETRYABLE = frozenset({SERIALIZATION_FAILURE, DEADLOCK_DETECTED})


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a (wrapped) driver error, None when the server sent none."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code if isinstance(code, str) else None


def is_retryable(exc: BaseException) -> bool:
    """A deadlock or serialization failure on a live connection: the transaction was rolled
    back whole, so running it again from the start is safe and will most likely succeed."""
    return (
        isinstance(exc, DBAPIError)
        and not exc.connection_invalidated
        and sqlstate(exc) in RETRYABLE
    )


def is_statement_timeout(exc: BaseException) -> bool:
    return isinstance(exc, DBAPIError) and sqlstate(exc) == QUERY_CANCELED


def is_disconnect(exc: BaseException) -> bool:
    """The database cannot be reached: the connection broke or was refused, or the server is
    shutting down. A driver error with no SQLSTATE never got an answer from a server (psycopg's
    connection failures; SQLite's busy or I/O errors, the embedded database being unusable)."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    code = sqlstate(exc)
    if code is None:
        return isinstance(exc, OperationalError | InterfaceError)
    return code.startswith("08") or code in _GONE


# Set by `infra.database` on the driver error of a disconnect met by the first statement a
# pooled connection ran since it was checked out: the transaction had sent nothing yet.
BEFORE_ANY_STATEMENT = "certs_before_any_statement"


def is_stale_connection(exc: BaseException) -> bool:
    """A pooled connection found dead by its first statement (the server restarted or dropped
    it while it sat idle in the pool): nothing of the transaction reached the server, so
    running it again on a fresh connection is safe. The pool has discarded every connection
    older than the failure by then (SQLAlchemy invalidates the pool on a disconnect)."""
    return (
        isinstance(exc, DBAPIError)
        and is_disconnect(exc)
        and bool(getattr(exc.orig, BEFORE_ANY_STATEMENT, False))
    )
