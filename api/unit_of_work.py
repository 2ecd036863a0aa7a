"""A request's unit of work: run the view, commit, and run both again on a transient conflict.

PostgreSQL aborts one of two transactions that deadlock (SQLSTATE 40P01), or that cannot be
serialized (40001), and rolls it back whole; the remedy it documents is to run the transaction
again. `CertsFlask.dispatch_request` does that for the request: the session is discarded, the
view runs again from the start in a fresh transaction (auth included), after a short jittered
pause, at most `ATTEMPTS` times. Nothing has been sent to the client at that point, and nothing
the failed attempt wrote survives, so a retried POST creates nothing twice. When the attempts
run out the error propagates and `api.errors` answers 409 `conflict_retry`.

The same goes for a pooled connection the server dropped while it sat idle (a restart, a
failover): it fails its very first statement, before anything of the transaction reached the
server (`infra.db_errors.is_stale_connection`), and the request runs again on a fresh
connection. This replaces the pool's pre-ping, a round trip on every request. A connection
lost later in the transaction is never run again (a commit may have happened): 503.

Retries use tenacity (attempt bounds, jittered exponential waits and hooks, tested) rather than
a loop of our own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import g
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from api.db import commit_request, discard_request_session
from infra import db_errors

log = logging.getLogger("certs.api")

ATTEMPTS = 4
# Full jitter: attempt n waits uniformly in [0, min(MAX, BASE * 2**n)] seconds, so requests
# that collided once do not collide again in lockstep.
WAIT_BASE_S = 0.025
WAIT_MAX_S = 0.5
ATTEMPTS_KEY = "db_attempts"


def _again(exc: BaseException) -> bool:
    return db_errors.is_retryable(exc) or db_errors.is_stale_connection(exc)


def _fresh_transaction(state: RetryCallState) -> None:
    """Between attempts: drop the aborted transaction and say why we go again."""
    exc = state.outcome.exception() if state.outcome else None
    discard_request_session()
    stale = exc is not None and db_errors.is_stale_connection(exc)
    log.warning(
        "%s (SQLSTATE %s), running the request again (attempt %d of %d)",
        "stale pooled connection" if stale else "transaction conflict",
        db_errors.sqlstate(exc) if exc else None,
        state.attempt_number + 1,
        ATTEMPTS,
    )


def _count(state: RetryCallState) -> None:
    setattr(g, ATTEMPTS_KEY, state.attempt_number)


def run_and_commit(view: Callable[[], Any]) -> Any:
    """`view()` then the commit, as one unit of work retried on deadlocks and serialization
    failures (`infra.db_errors.is_retryable`)."""

    def attempt() -> Any:
        rv = view()
        commit_request()
        return rv

    return _RETRYING(attempt)


# One for the process (building it was a hundredth of a small request's CPU): tenacity keeps a
# call's state (attempt, statistics) thread-local, and a request never runs another inside it.
_RETRYING = Retrying(
    retry=retry_if_exception(_again),
    stop=stop_after_attempt(ATTEMPTS),
    wait=wait_random_exponential(multiplier=WAIT_BASE_S, max=WAIT_MAX_S),
    before=_count,
    before_sleep=_fresh_transaction,
    reraise=True,
)
