"""The periodic scheduler (APScheduler): the outbox sweep now; recomputation and rules later."""

from __future__ import annotations

import logging

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from workers import outbox

log = logging.getLogger("certs.scheduler")

SWEEP_SECONDS = 5


def build_scheduler(*, background: bool) -> BaseScheduler:
    scheduler: BaseScheduler = BackgroundScheduler() if background else BlockingScheduler()
    scheduler.add_job(
        outbox.sweep,
        "interval",
        seconds=SWEEP_SECONDS,
        id="outbox_sweep",
        max_instances=1,
        coalesce=True,
    )
    return scheduler
