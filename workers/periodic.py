"""The periodic work: what the scheduler runs on a timer and `certs tick` runs once, now.

Steps register themselves with `register_step(name, fn, order)` from their own modules (imported
through `workers.actors`): the outbox sweep, status recomputation, rule evaluation, delivery.
Each step is `fn(now, org_id) -> dict` (org_id None = every organization).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tenancy import db
from workers import outbox

log = logging.getLogger("certs.periodic")

Step = Callable[[datetime, uuid.UUID | None], dict[str, Any]]


@dataclass(frozen=True)
class _Registered:
    order: int
    name: str
    fn: Step


_STEPS: dict[str, _Registered] = {}


def register_step(name: str, fn: Step, order: int) -> None:
    """Add (or replace) a periodic step; lower `order` runs first."""
    _STEPS[name] = _Registered(order, name, fn)


def steps() -> list[tuple[str, Step]]:
    return [(s.name, s.fn) for s in sorted(_STEPS.values(), key=lambda s: (s.order, s.name))]


def run_once(now: datetime | None = None, org_id: uuid.UUID | None = None) -> dict[str, Any]:
    """Run every periodic step once; a failing step is logged and does not stop the others."""
    now = now or db.utcnow()
    report: dict[str, Any] = {}
    for name, step in steps():
        try:
            report[name] = step(now, org_id)
        except Exception as exc:  # one broken step must not starve the rest
            log.exception("periodic step %s failed", name)
            report[name] = {"error": repr(exc)}
    return report


register_step("outbox_sweep", lambda now, _org: {"sent": outbox.sweep(now)}, order=0)
