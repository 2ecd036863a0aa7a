"""Database conflicts and broker faults under real concurrency: what the client is told.

* Overlapping bulk upserts (the same external ids, sent in different orders by concurrent
  requests) must all succeed: rows are written in key order, and a deadlock or serialization
  failure that still happens re-runs the request in a fresh transaction.

Sized to show the defect in seconds; `SOAK=1` runs the figures of the attack run.
"""

from __future__ import annotations

import os
import random
from collections import Counter

import pytest

from tests.concurrency.live import Live, parallel

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

SOAK = os.environ.get("SOAK") == "1"


def _overlapping_bulk(live: Live, token: str, requests: int, rows: int, pool: int) -> None:
    """`requests` bulk upserts of `rows` employees each, drawn from `pool` external ids (so
    every pair overlaps), each in its own random order; all sent at once."""
    rng = random.Random(5)
    bodies = []
    for i in range(requests):
        ids = rng.sample(range(pool), rows)  # random order: the worst lock order
        bodies.append(
            {"items": [{"external_id": f"E-{n:05d}", "name": f"Person {n} v{i}"} for n in ids]}
        )
    union = {item["external_id"] for body in bodies for item in body["items"]}

    answers = parallel(
        requests, lambda i: live.request("POST", "/employees/bulk", token, bodies[i]), threads=20
    )
    statuses = Counter(a.status for a in answers)
    failures = [a.json() for a in answers if a.status != 200][:3]
    assert statuses == {200: requests}, f"{dict(statuses)}; e.g. {failures}"
    for answer in answers:
        counts = answer.json()["counts"]
        assert counts["error"] == 0
        assert counts["created"] + counts["updated"] + counts["unchanged"] == rows

    # Final rows = the union of what was sent, each external id once.
    page = live.request("GET", "/employees?limit=500", token).json()
    seen: list[str] = []
    while True:
        seen += [e["external_id"] for e in page["items"]]
        if not page.get("next_cursor"):
            break
        page = live.request(
            "GET", f"/employees?limit=500&cursor={page['next_cursor']}", token
        ).json()
    assert len(seen) == len(set(seen)), "duplicated employees"
    assert set(seen) == union


def test_overlapping_bulk_upserts_all_succeed(live, make_org, token_for):  # type: ignore[no-untyped-def]
    org = make_org()
    _overlapping_bulk(live, token_for(org), requests=24, rows=200, pool=300)


@pytest.mark.slow
@pytest.mark.skipif(not SOAK, reason="SOAK=1 runs the attack run's figures")
def test_overlapping_bulk_upserts_soak(live, make_org, token_for):  # type: ignore[no-untyped-def]
    org = make_org()
    _overlapping_bulk(live, token_for(org), requests=200, rows=500, pool=800)
