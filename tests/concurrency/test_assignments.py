"""Assignments under parallel writes: renewals never lose a cycle, a revocation always sticks.

Real gunicorn workers on PostgreSQL (the `live` stack). The fast variants show a lost update
within seconds; `SOAK=1` runs the attack run's sizes (marked slow: `SOAK=1 make soak`).
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.concurrency.consistency import (
    drifted_statuses,
    duplicate_cycles,
    repeated_revocations,
)
from tests.concurrency.live import Live, parallel
from tests.support import factories

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


SOAK = os.environ.get("SOAK") == "1"
_soak = [pytest.mark.slow, pytest.mark.skipif(not SOAK, reason="the issue's size: SOAK=1")]


def sizes(fast: int, soak: int) -> list[Any]:
    """The fast size, and the attack run's size (`SOAK=1 make soak`)."""
    return [pytest.param(fast, id=str(fast)), pytest.param(soak, id=str(soak), marks=_soak)]


def _assign(live: Live, token: str, cert_id: uuid.UUID, subject_id: uuid.UUID, issued: str) -> str:
    resp = live.request(
        "POST",
        "/assignments",
        token,
        {
            "certification_id": str(cert_id),
            "subject_type": "employee",
            "subject_id": str(subject_id),
            "issued_on": issued,
        },
    )
    assert resp.status == 201, resp.body
    return str(resp.json()["id"])


@pytest.mark.parametrize("n", sizes(50, 400))
def test_parallel_renewals_each_open_one_cycle(live, make_org, token_for, n):
    org = make_org()
    token = token_for(org)
    cert = factories.create_certification(org.id, validity_months=12)
    holder = factories.create_employee(org.id)
    today = datetime.now(UTC).date()
    assignment_id = _assign(live, token, cert.id, holder.id, today.isoformat())

    statuses = parallel(
        n,
        lambda i: (
            live.request(
                "POST",
                f"/assignments/{assignment_id}/renew",
                token,
                # Distinct expiries: repeating the current cycle's dates opens no cycle.
                {"notes": f"renewal {i}", "expires_on": (today + timedelta(400 + i)).isoformat()},
            ).status
        ),
    )

    assert Counter(statuses) == {200: n}
    current = live.request("GET", f"/assignments/{assignment_id}", token).json()
    history = live.request("GET", f"/assignments/{assignment_id}/history", token).json()
    closed = [c["cycle"] for c in history["cycles"] if not c["current"]]
    assert current["cycle"] == 1 + n
    assert sorted(closed) == list(range(1, n + 1))
    assert duplicate_cycles(org.id) == []
    assert drifted_statuses(org.id) == []


@pytest.mark.parametrize("n", sizes(40, 80))
def test_revoke_racing_renew_and_patch_stays_revoked(live, make_org, token_for, n):
    """Per assignment: revoke, two renewals and a date correction, all at once.

    Every assignment starts expired, so a renewal or a correction that ignores a concurrent
    revocation writes a different status (valid) over the stored `revoked`.
    """
    org = make_org()
    token = token_for(org)
    cert = factories.create_certification(org.id, validity_months=12)
    holders = factories.create_employees(org.id, n)
    today = datetime.now(UTC).date()
    long_ago = (today - timedelta(days=800)).isoformat()
    ids = parallel(n, lambda i: _assign(live, token, cert.id, holders[i].id, long_ago))

    def write(k: int) -> tuple[str, str, int]:
        assignment_id, what = ids[k // 4], ("revoke", "renew", "renew", "patch")[k % 4]
        if what == "revoke":
            resp = live.request(
                "POST", f"/assignments/{assignment_id}/revoke", token, {"reason": "audit"}
            )
        elif what == "renew":
            # Distinct expiries: repeating the current cycle's dates opens no cycle.
            body = {"expires_on": (today + timedelta(days=400 + k)).isoformat()}
            resp = live.request("POST", f"/assignments/{assignment_id}/renew", token, body)
        else:
            recent = (today - timedelta(days=10)).isoformat()
            resp = live.request(
                "PATCH", f"/assignments/{assignment_id}", token, {"issued_on": recent}
            )
        return assignment_id, what, resp.status

    results = parallel(4 * n, write, threads=40)

    assert {status for _, _, status in results} <= {200, 409}, Counter(results)
    assert all(status == 200 for _, what, status in results if what == "revoke")
    renewed = Counter(a for a, what, status in results if what == "renew" and status == 200)
    drift = drifted_statuses(org.id)
    assert [d for d in drift if d.revoked and d.stored != "revoked"] == []
    assert drift == []
    # The worker's tick (requested by every write) repairs a drifted status within seconds; the
    # second `revoked` event it records then is the trace of the drift.
    assert repeated_revocations(org.id) == []
    assert duplicate_cycles(org.id) == []
    for assignment_id in ids:
        row = live.request("GET", f"/assignments/{assignment_id}", token).json()
        assert row["status"] == "revoked"
        assert row["cycle"] == 1 + renewed[assignment_id]
