"""What every scenario shares: the load average beside each figure, and floors without counts.

A floor is the raw statement alone. Since migration 0021 a statement on `assignments` also
maintains the compliance counts (triggers), which the project's run pays for and the floor must
not: `counts_off()` disables those triggers (as the owner, PostgreSQL) around a floor run and
rebuilds the organization's counts afterwards, untimed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
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
