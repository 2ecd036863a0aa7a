"""The periodic work: what the scheduler runs on a timer and `certs tick` runs once, now.

Each step is a function `step(now) -> dict` registered in `PERIODIC_STEPS`; domain issues add
theirs (recompute statuses, evaluate rules, deliver notifications). The outbox sweep is first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from tenancy import db
from workers import outbox

log = logging.getLogger("certs.periodic")

Step = Callable[[datetime], dict[str, Any]]
PERIODIC_STEPS: list[tuple[str, Step]] = [
    ("outbox_sweep", lambda now: {"sent": outbox.sweep(now)}),
]


def run_once(now: datetime | None = None) -> dict[str, Any]:
    """Run every periodic step once; a failing step is logged and does not stop the others."""
    now = now or db.utcnow()
    report: dict[str, Any] = {}
    for name, step in PERIODIC_STEPS:
        try:
            report[name] = step(now)
        except Exception as exc:  # one broken step must not starve the rest
            log.exception("periodic step %s failed", name)
            report[name] = {"error": repr(exc)}
    return report
