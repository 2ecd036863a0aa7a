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
    ("certs", "patches"),
    [pytest.param(8, 160, id="quick"), pytest.param(30, 600, id="soak", marks=_soak)],
)
def test_concurrent_link_patches_replace_never_merge(live, make_org, token_for, certs, patches):
    org = make_org()
    token = token_for(org)
    roles = [_create(live, token, "/roles", {"name": f"Role {i}"}) for i in range(4)]
    groups = [
        _create(live, token, "/certification-groups", {"name": f"Group {i}"}) for i in range(4)
    ]
    for role_id in roles:
        _employees(live, token, role_id, 5)
    cert_ids = [
        _create(live, token, "/certifications", {"name": f"Cert {i}", "type": "employee"})
        for i in range(certs)
    ]
    live.drain()

    # Consecutive requests edit the same certification, so the parallel ones overlap on it.
    target = [cert_ids[i * certs // patches] for i in range(patches)]
    rng = random.Random(2)
    bodies: list[dict[str, Any]] = []
    for i in range(patches):
        body: dict[str, Any] = {}
        if i % 3 != 2:
            body["role_ids"] = [str(rng.choice(roles))]
        if i % 3 != 1:
            body["group_ids"] = [str(rng.choice(groups))]
        bodies.append(body)

    def patch(i: int) -> int:
        path = f"/certifications/{target[i]}"
        return live.request("PATCH", path, token, bodies[i]).status

    statuses = parallel(patches, patch)
    live.drain(timeout=120)

    sent: dict[uuid.UUID, dict[str, set[frozenset[uuid.UUID]]]] = {
        c: {"role_ids": set(), "group_ids": set()} for c in cert_ids
    }
    for i, body in enumerate(bodies):
        for field, ids in body.items():
            sent[target[i]][field].add(frozenset(uuid.UUID(x) for x in ids))
    final = check.links(org.id)
    merged = {
        (c, field): sorted(map(str, final[c][field]))
        for c in cert_ids
        for field in ("role_ids", "group_ids")
        if final[c][field] not in sent[c][field]
    }
    assert merged == {}, f"{len(merged)} link sets no request sent, of {2 * certs}"
    assert {s: statuses.count(s) for s in statuses} == {200: patches}

    members = check.active_members(org.id)
    holders = check.role_holders(org.id)
    wrong = {
        c: (len(holders.get(c, set())), len(expected))
        for c in cert_ids
        if holders.get(c, set())
        != (expected := set().union(*(members[r] for r in final[c]["role_ids"])))
    }
    assert wrong == {}, "certifications whose role assignments are not their roles' members"
    assert check.failed_jobs(org.id) == []


@pytest.mark.parametrize(
    ("members", "moves", "fanouts", "pace"),
    [
        pytest.param(5_000, 300, 8, 0.4, id="quick"),
        pytest.param(20_000, 400, 1, 0, id="soak", marks=_soak),
    ],
)
def test_fanout_ends_with_the_membership_at_its_end(
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
    live.drain(timeout=120)

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
    live.drain(timeout=600 if SOAK else 180)

    stale = check.stale_role_requirements(org.id)
    assert stale == [], f"{len(stale)} stale role requirements"
    assert check.missing_role_requirements(org.id) == []
    assert check.failed_jobs(org.id) == []
