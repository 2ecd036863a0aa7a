"""A certification's links and its role fan-out under concurrent writes (live stack).

- Concurrent `PATCH /certifications/{id}` of `role_ids` / `group_ids` must replace the links:
  each certification ends with exactly the set one request sent, never a union of several, and
  its role assignments (once the fan-outs drained) are exactly its final roles' active members.
- A fan-out ends with the membership at its end: employees moved out of the role or deactivated
  while certification fan-outs run keep no required role assignment, and every active member
  holds one.

Sizes are small enough to show a defect within seconds; `SOAK=1` runs the issue's sizes
(marked slow: `SOAK=1 make soak`).
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from typing import Any

import pytest

from tests.concurrency import consistency_links as check
from tests.concurrency.live import Live, parallel
from tests.conftest import drain

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

SOAK = os.environ.get("SOAK") == "1"
_soak = [pytest.mark.slow, pytest.mark.skipif(not SOAK, reason="the issue's size: SOAK=1")]


def _ok(resp: Any, status: int = 200) -> Any:
    assert resp.status == status, (resp.status, resp.body[:500])
    return resp.json()


def _create(live: Live, token: str, path: str, body: dict[str, Any]) -> uuid.UUID:
    return uuid.UUID(_ok(live.request("POST", path, token, body), 201)["id"])


def _employees(live: Live, token: str, role_id: uuid.UUID, n: int) -> list[uuid.UUID]:
    """n active employees in `role_id`, created by bulk import (10,000 rows per request)."""
    ids: list[uuid.UUID] = []
    tag = uuid.uuid4().hex[:6]
    for start in range(0, n, 10_000):
        items = [
            {"external_id": f"{tag}-{i}", "name": f"Employee {i}", "role_id": str(role_id)}
            for i in range(start, min(n, start + 10_000))
        ]
        report = _ok(live.request("POST", "/employees/bulk", token, {"items": items}))
        assert report["counts"]["error"] == 0, report["rows"][:3]
        ids += [uuid.UUID(row["id"]) for row in report["rows"]]
    return ids


@pytest.mark.parametrize(
    ("members", "moves", "fanouts", "pace"),
    [
        pytest.param(5_000, 300, 8, 0.4, id="quick"),
        pytest.param(20_000, 400, 1, 0, id="soak", marks=_soak),
    ],
)
def test_fanout_ends_with_the_membership_at_its_end(  # type: ignore[no-untyped-def]
    live, make_org, token_for, members, moves, fanouts, pace
):
    org = make_org()
    token = token_for(org)
    role = _create(live, token, "/roles", {"name": "Crane operators"})
    elsewhere = _create(live, token, "/roles", {"name": "Office"})
    people = _employees(live, token, role, members)
    certs = [
        _create(live, token, "/certifications", {"name": f"Cert {i}", "type": "employee"})
        for i in range(fanouts)
    ]
    drain(timeout=120)

    # Certification fan-outs over every member, started one after another while people move
    # out of the role or leave; each certification is linked once, so its one fan-out races
    # only the moves (and their employee fan-outs), never a second fan-out of itself.
    moved = random.Random(3).sample(people, moves)

    linked: list[int] = []

    def link_roles() -> None:
        for cert_id in certs:
            body = {"role_ids": [str(role)]}
            linked.append(live.request("PATCH", f"/certifications/{cert_id}", token, body).status)
            time.sleep(pace)

    def move(i: int) -> int:
        time.sleep(random.random() * 0.05)  # spread over the fan-outs, not all at once
        body = {"role_id": str(elsewhere)} if i % 2 else {"active": False}
        return live.request("PATCH", f"/employees/{moved[i]}", token, body).status

    driver = threading.Thread(target=link_roles)
    driver.start()
    try:
        statuses = parallel(moves, move, threads=6)
    finally:
        driver.join(timeout=120)
    assert set(statuses) == {200}, sorted(set(statuses))
    assert linked == [200] * fanouts
    drain(timeout=600 if SOAK else 180)

    stale = check.stale_role_requirements(org.id)
    assert stale == [], f"{len(stale)} stale role requirements"
    assert check.missing_role_requirements(org.id) == []
    assert check.failed_jobs(org.id) == []
