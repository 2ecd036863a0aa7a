"""What every scenario shares: alternating rounds, the load average beside each figure, and
floors without counts.

`alternate` runs the project's and the floor's runs in turn (a b, a b, a b), never all of one
then all of the other, so a swing of a shared machine's load biases neither side, and prints
each figure as it is taken with the load average beside it.

A floor is the raw statement alone. Since migration 0021 a statement on `assignments` also
maintains the compliance counts (triggers), which the project's run pays for and the floor must
not: `counts_off()` disables those triggers (as the owner, PostgreSQL) around a floor run and
rebuilds the organization's counts afterwards, untimed.
"""

from __future__ import annotations

import os
import statistics
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from sqlalchemy import create_engine, text

from certifications.reporting.counts import rebuild
from infra import context
from infra import database as db
from infra.settings import load_settings

COUNT_TRIGGERS = (
    "assignment_counts_insert",
    "assignment_counts_update",
    "assignment_counts_delete",
)


def load_average() -> float:
    """The 1-minute load average when the figure was taken (2 cores: above 2 is contention)."""
    return round(os.getloadavg()[0], 2)


REPEATS = 3


def alternate(
    scenario: str,
    runs: Mapping[str, Callable[[], float]],
    *,
    repeats: int = REPEATS,
    before: Callable[[], None] | None = None,
    unit: str = "s",
) -> dict[str, float]:
    """Run `runs` in turn, `repeats` rounds (a b c, a b c, ...); the median of each, by name.

    `before` runs (untimed) before every run, e.g. to restore the starting state. Each figure
    is printed as it is taken, with the load average beside it.
    """
    values: dict[str, list[float]] = {name: [] for name in runs}
    for round_no in range(1, repeats + 1):
        for name, run in runs.items():
            if before is not None:
                before()
            value = run()
            values[name].append(value)
            print(
                f"{scenario}: round {round_no}/{repeats} {name} {value:.4f} {unit}"
                f" (load {load_average()})",
                flush=True,
            )
    return {name: statistics.median(figures) for name, figures in values.items()}


def _set_triggers(enabled: bool) -> None:
    url = load_settings().migration_database_url
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            verb = "ENABLE" if enabled else "DISABLE"
            for name in COUNT_TRIGGERS:
                conn.execute(text(f"ALTER TABLE assignments {verb} TRIGGER {name}"))
    finally:
        engine.dispose()


@contextmanager
def counts_off(org_id: uuid.UUID) -> Iterator[None]:
    """Run a floor without the counts triggers; then rebuild the org's counts (untimed)."""
    if db.get_engine().dialect.name != "postgresql":
        yield
        return
    _set_triggers(False)
    try:
        yield
    finally:
        _set_triggers(True)
        with context.tenant(org_id), db.new_session() as s:
            rebuild(s, org_id)
            s.commit()
