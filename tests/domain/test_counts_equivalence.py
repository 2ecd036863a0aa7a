"""The summary and the group tree read from the maintained counts answer byte for byte what the
scan of every assignment answered (`compliance.scanned_certification_stats`, the computation
they replace), over randomized histories.

Each seed builds a catalog (nested groups, an ungrouped and an archived certification) and
runs random steps through the API — assign, revoke, renew, exempt and lift, change expiry,
delete, deactivate and reactivate employees — plus revoked history written directly (stored
statuses other than `revoked`, equal revocation times decided by id). At checkpoints both
endpoints, with and without `include_inactive`, must give the same bytes both ways.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from certifications.reporting import compliance
from tests.support.factories import create_assignment, wrong_counts

ENDPOINTS = ("/compliance/summary", "/views/groups")
STEPS = 60


def _bodies(api: Any) -> dict[tuple[str, str], bytes]:
    out = {}
    for path in ENDPOINTS:
        for inactive in ("false", "true"):
            resp = api.get(path, query_string={"include_inactive": inactive})
            assert resp.status_code == 200, resp.get_json()
            out[(path, inactive)] = resp.data
    return out


def _check(api: Any, org_id: uuid.UUID, monkeypatch: pytest.MonkeyPatch, jobs: Any) -> None:
    # The ticks the steps requested run first: one running between the two reads below would
    # change a status in between (the worker serves every test of the session).
    jobs.drain()
    assert wrong_counts(org_id) == []
    counted = _bodies(api)
    with monkeypatch.context() as m:
        m.setattr(compliance, "certification_stats", compliance.scanned_certification_stats)
        scanned = _bodies(api)
    for key in counted:
        assert counted[key] == scanned[key], key


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_counts_answer_what_the_scan_answers(
    seed, api, org, make_group, make_certification, make_employee, monkeypatch, jobs
):
    rnd = random.Random(seed)
    top = make_group(org, name=f"Top {seed}")
    child = make_group(org, name=f"Child {seed}", parent_id=top.id)
    certs = [
        make_certification(org, name=f"A{seed}", validity_months=12, group_ids=[top.id]),
        make_certification(org, name=f"B{seed}", validity_months=6, group_ids=[child.id]),
        make_certification(org, name=f"C{seed}", group_ids=[top.id, child.id]),
        make_certification(org, name=f"D{seed}", validity_months=24),  # ungrouped
        make_certification(org, name=f"E{seed}", archived_at=datetime(2026, 1, 1, tzinfo=UTC)),
    ]
    people = [make_employee(org, name=f"P{seed}-{i}") for i in range(8)]
    ids: list[str] = []  # assignments created through the API
    today = date(2026, 11, 30)

    def some_day() -> str | None:
        return rnd.choice([None, (today - timedelta(days=rnd.randint(0, 900))).isoformat()])

    def step() -> None:
        kind = rnd.choice(
            ["assign"] * 4
            + ["revoke", "renew", "exempt", "lift", "expiry", "delete", "activity", "history"]
        )
        if kind == "assign" or not ids:
            body = {
                "certification_id": str(rnd.choice(certs[:4]).id),
                "subject_type": "employee",
                "subject_id": str(rnd.choice(people).id),
            }
            if (issued := some_day()) is not None:
                body["issued_on"] = issued
            resp = api.post("/assignments", json=body)
            assert resp.status_code in (201, 409), resp.get_json()
            if resp.status_code == 201:
                ids.append(str(resp.get_json()["id"]))
            return
        aid = rnd.choice(ids)
        if kind == "revoke":
            resp = api.post(f"/assignments/{aid}/revoke", json={"reason": "random"})
        elif kind == "renew":
            resp = api.post(f"/assignments/{aid}/renew", json={"issued_on": today.isoformat()})
        elif kind == "exempt":
            resp = api.post(f"/assignments/{aid}/exemption", json={"reason": "random"})
        elif kind == "lift":
            resp = api.delete(f"/assignments/{aid}/exemption")
        elif kind == "expiry":
            expires = (today + timedelta(days=rnd.randint(-60, 60))).isoformat()
            resp = api.patch(f"/assignments/{aid}", json={"expires_on": expires})
        elif kind == "delete":
            resp = api.delete(f"/assignments/{aid}")
            if resp.status_code in (200, 204):
                ids.remove(aid)
        elif kind == "activity":
            who = rnd.choice(people)
            resp = api.patch(f"/employees/{who.id}", json={"active": rnd.random() < 0.5})
        else:  # revoked history written directly, possibly tied on revoked_at
            at = datetime(2026, rnd.choice([1, 2]), 1, tzinfo=UTC)
            status = rnd.choice(["revoked", "valid", "expired", "missing"])
            create_assignment(rnd.choice(certs[:4]), rnd.choice(people), status=status,
                              revoked_at=at)  # fmt: skip
            return
        assert resp.status_code < 500, resp.get_json()

    for i in range(STEPS):
        step()
        if i % 15 == 14:
            _check(api, org.id, monkeypatch, jobs)
    _check(api, org.id, monkeypatch, jobs)
