"""End to end through HTTP and a real worker (a `dramatiq` process on the PostgreSQL + Redis run).

A role with employees gets a certification → missing assignments appear; renewals with dates →
valid / expires soon / expired; a future date → upcoming; revoke → revoked; a newcomer to the
role gets it; a leaver loses an unrecorded one; re-running every job changes nothing.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from certifications.assignments.models import StatusEvent
from infra import context
from infra import database as db
from infra.database import utcnow
from jobs.models import OutboxMessage
from jobs.outbox import request_job
from tenancy.organizations import org_today


def _ok(resp, code=200):
    assert resp.status_code == code, resp.get_json()
    return resp.get_json()


def _assignments(api, **filters):
    query = "&".join(f"{k}={v}" for k, v in {"limit": 500, **filters}.items())
    return _ok(api.get(f"/assignments?{query}"))["items"]


def _by_subject(api, cert_id):
    return {a["subject_id"]: a for a in _assignments(api, certification_id=cert_id)}


def _rerun_every_job(org, as_tenant):
    with context.platform(), db.new_session() as s:
        done = s.execute(
            select(OutboxMessage.actor_name, OutboxMessage.payload)
            .where(OutboxMessage.org_id == org.id)
            .order_by(OutboxMessage.created_at)
        ).all()
    assert done
    with as_tenant(org.id) as s:
        for actor_name, payload in done:
            kwargs = {k: v for k, v in payload.items() if k not in ("org_id", "job_id")}
            request_job(s, actor_name, **kwargs)
        s.commit()
    return len(done)


def _events(as_tenant, org):
    with as_tenant(org.id) as s:
        return s.scalar(select(func.count()).select_from(StatusEvent))


def test_role_certification_lifecycle(api, org, as_tenant, jobs):
    role = _ok(api.post("/roles", json={"name": "Welder"}), 201)
    people = [
        _ok(api.post("/employees", json={"name": f"Welder {i}", "role_id": role["id"]}), 201)
        for i in range(5)
    ]
    ids = [p["id"] for p in people]
    cert = _ok(
        api.post(
            "/certifications",
            json={
                "name": "Hot work permit",
                "type": "employee",
                "role_ids": [role["id"]],
                "validity": {"months": 12},
                "warning_days": 30,
            },
        ),
        201,
    )
    job_ids = [j["id"] for j in cert["jobs"]]
    assert job_ids, cert
    jobs.drain()
    assert [_ok(api.get(f"/jobs/{j}"))["state"] for j in job_ids] == ["done"]

    # The role's employees hold it, missing.
    rows = _by_subject(api, cert["id"])
    assert set(rows) == set(ids)
    assert {(a["source"], a["status"]) for a in rows.values()} == {("role", "missing")}

    # Renewals with dates, a future date, a revocation. "Today" is the org's (its zone, not the
    # host's); the dates keep their status if the server's today is already the next day.
    today = org_today(org.timezone, utcnow())
    plan = {
        ids[0]: ({"issued_on": today.isoformat()}, "valid"),
        ids[1]: (
            {
                "issued_on": (today - timedelta(days=300)).isoformat(),
                "expires_on": (today + timedelta(days=10)).isoformat(),
            },
            "expires_soon",
        ),
        ids[2]: ({"issued_on": (today - timedelta(days=800)).isoformat()}, "expired"),
        ids[3]: ({"issued_on": (today + timedelta(days=7)).isoformat()}, "upcoming"),
    }
    for subject, (body, expected) in plan.items():
        renewed = _ok(api.post(f"/assignments/{rows[subject]['id']}/renew", json=body))
        assert renewed["status"] == expected, (body, renewed)
    revoked = _ok(api.post(f"/assignments/{rows[ids[4]]['id']}/revoke", json={"reason": "Audit"}))
    assert revoked["status"] == "revoked"
    statuses = {s: a["status"] for s, a in _by_subject(api, cert["id"]).items()}
    assert statuses == {
        ids[0]: "valid",
        ids[1]: "expires_soon",
        ids[2]: "expired",
        ids[3]: "upcoming",
        ids[4]: "revoked",
    }
    assert len(_assignments(api, status="expires_soon", certification_id=cert["id"])) == 1

    # A newcomer to the role gets it; a leaver loses the unrecorded one, keeps a recorded one.
    newcomer = _ok(api.post("/employees", json={"name": "New", "role_id": role["id"]}), 201)
    jobs.drain()
    rows = _by_subject(api, cert["id"])
    assert rows[newcomer["id"]]["status"] == "missing"
    _ok(api.patch(f"/employees/{newcomer['id']}", json={"role_id": None}))
    _ok(api.patch(f"/employees/{ids[0]}", json={"active": False}))
    jobs.drain()
    rows = _by_subject(api, cert["id"])
    assert newcomer["id"] not in rows
    assert rows[ids[0]]["status"] == "valid"
    assert rows[ids[0]]["required"] is False
    assert all(a["required"] for s, a in rows.items() if s != ids[0])

    # Every job again (duplicates, as at-least-once delivery allows): nothing changes.
    before = (_assignments(api), _events(as_tenant, org))
    assert _rerun_every_job(org, as_tenant) >= 4
    jobs.drain()
    assert (_assignments(api), _events(as_tenant, org)) == before
