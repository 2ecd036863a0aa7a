"""`python -m bench metrics --size N`: cost of one /metrics scrape's database gauges with N orgs.

Row-level security admits one organization per transaction setting, so the jobs and
notifications gauges are counted org by org, inside `certs_metrics_gauges()` (the SECURITY
DEFINER function of migration 0007, `api.metrics.database_families`). This creates N
organizations with 3 jobs each (skipped if the database already holds N), then times the
uncached database part of a scrape. The floor is one GROUP BY over the same tables as the
table owner would run it (what a BYPASSRLS monitoring role could do instead).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from sqlalchemy import text

from api.metrics import database_families
from bench._support import alternate, load_average
from infra import context
from infra import database as db
from infra.settings import load_settings
from runtime import bootstrap

DEFAULT_SIZE = 5_000


def _ensure_orgs(size: int) -> None:
    with context.platform(), db.new_session() as s:
        have = s.execute(text("SELECT count(*) FROM organizations")).scalar_one()
    missing = size - have
    if missing <= 0:
        return
    engine = db.get_engine()
    with engine.begin() as conn:
        for i in range(missing):
            org_id = uuid.uuid4()
            conn.execute(
                text(
                    "INSERT INTO organizations (id, name, timezone, modules, admin_emails, "
                    "created_at, updated_at) VALUES (:id, :name, 'UTC', '[\"hse\"]', '[]', "
                    "now(), now())"
                ),
                {"id": org_id, "name": f"bench metrics {i}"},
            )
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT set_config('app.org_id', :o, true)"), {"o": str(org_id)})
            for state in ("queued", "done", "done"):
                conn.execute(
                    text(
                        "INSERT INTO jobs (org_id, id, kind, state, done, created_at) "
                        "VALUES (:org, :id, 'bench', :state, 0, now())"
                    ),
                    {"org": org_id, "id": uuid.uuid4(), "state": state},
                )


def main(size: int) -> None:
    bootstrap(load_settings())
    _ensure_orgs(size)
    found: list[Any] = []

    def run() -> float:
        started = time.perf_counter()
        found[:] = database_families()
        return time.perf_counter() - started

    seconds = alternate("metrics", {"gauges": run})["gauges"]  # no floor: one kind of run
    families = found
    up = next(f for f in families if f.name == "certs_metrics_database_up").samples[0].value
    assert up == 1, "database gauges failed"
    print(
        json.dumps(
            {
                "scenario": "metrics",
                "size": size,
                "seconds": round(seconds, 3),
                "per_org_ms": round(seconds / size * 1000, 3),
                "load_average": load_average(),
            }
        )
    )
