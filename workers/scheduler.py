"""The periodic scheduler (APScheduler): the outbox sweep, and each due organization's tick.

Jobs:
* `outbox_sweep` every 5 s (safe on any number of schedulers: rows are locked SKIP LOCKED).
* `ticks` every `PERIODIC_MINUTES` (5): `workers.tick.queue_due_ticks()` claims each org that
  is due — its local date changed (so right after each org's local midnight, within one
  interval), its last tick is over an hour old, or one of its report schedules fell due since
  its last tick — and queues its `tick_org` (see
  `workers.tick` for the pipeline).

One active scheduler: on PostgreSQL the `periodic` job runs only in the instance holding the
session advisory lock `LEADER_LOCK` on a dedicated connection. A second instance is a hot
standby: each of its runs tries the lock and skips while the leader lives; when the leader dies
its connection (and lock) goes and the standby takes over at its next run. Independently of the
lock, each org is claimed by a compare-and-set on `recompute_state.version`, so even two
schedulers that both ran would queue an org's recomputation once per due period.
SQLite (embedded) has one process, so the lock is always held there.
"""

from __future__ import annotations

import logging
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy import text
from sqlalchemy.engine import Connection

from infra import database as db
from jobs import relay as outbox
from workers.tick import queue_due_ticks

log = logging.getLogger("certs.scheduler")

SWEEP_SECONDS = 5
PERIODIC_MINUTES = 5
LEADER_LOCK = 0x63657274_73636864  # "certschd": one key for the whole deployment


class Leadership:
    """Holds PostgreSQL's session advisory lock `LEADER_LOCK` while this process leads."""

    def __init__(self, key: int = LEADER_LOCK) -> None:
        self.key = key
        self._conn: Connection | None = None

    def acquire(self) -> bool:
        """True if this process is (or just became) the leader."""
        engine = db.get_engine()
        if engine.dialect.name != "postgresql":
            return True
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
                return True
            except Exception:  # connection lost: so is the lock
                log.warning("scheduler lost its leader connection")
                self.release()
        conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar()
        if got:
            log.info("scheduler is the leader")
            self._conn = conn
            return True
        conn.close()
        return False

    def release(self) -> None:
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        try:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
        except Exception:  # noqa: S110 - closing the connection releases it anyway
            pass
        try:
            conn.invalidate()  # never hand a session-locked connection back to the pool
        finally:
            conn.close()


def run_periodic(leadership: Leadership) -> dict[str, Any] | None:
    """Queue the due organizations' ticks, if this instance leads; None when standby."""
    if not leadership.acquire():
        log.debug("standby scheduler: another instance holds the lock")
        return None
    report = queue_due_ticks()
    log.info("scheduled ticks: %s", report)
    return report


class RoutineRunsAtDebug(logging.Filter):
    """APScheduler's executor logs two INFO lines per run ("Running job", "... executed
    successfully"): every 5 s for the outbox sweep. Demote them to DEBUG (kept when the level is
    DEBUG); its warnings and errors (missed runs, exceptions) stay as they are."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


APSCHEDULER_RUN_LOGGER = "apscheduler.executors.default"


def quiet_routine_runs() -> None:
    """Install `RoutineRunsAtDebug` on APScheduler's executor logger (idempotent)."""
    logger = logging.getLogger(APSCHEDULER_RUN_LOGGER)
    if not any(isinstance(f, RoutineRunsAtDebug) for f in logger.filters):
        logger.addFilter(RoutineRunsAtDebug())


def build_scheduler(*, background: bool, leadership: Leadership | None = None) -> BaseScheduler:
    quiet_routine_runs()
    scheduler: BaseScheduler = BackgroundScheduler() if background else BlockingScheduler()
    scheduler.add_job(
        outbox.sweep,
        "interval",
        seconds=SWEEP_SECONDS,
        id="outbox_sweep",
        max_instances=1,
        coalesce=True,
    )
    scheduler.add_job(
        run_periodic,
        "interval",
        minutes=PERIODIC_MINUTES,
        args=(leadership or Leadership(),),
        id="periodic",
        max_instances=1,
        coalesce=True,
        next_run_time=db.utcnow(),  # once at start, then every interval
    )
    return scheduler
