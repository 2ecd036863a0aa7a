"""Equivalences over HTTP: OSHA 10 is satisfied by OSHA 30 (`satisfied_by`), and the holder's
OSHA 10 assignment follows their OSHA 30 record through every change of it."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select, update

from certifications.assignments.models import StatusEvent
from certifications.automation.models import Notification, Task
from certifications.automation.notifications import evaluate_rules
from certifications.automation.tasks import evaluate_task_rules
from tenancy.organizations import org_today
from workers import actors
from workers.tick import tick_now

NOW = datetime.now(UTC)
EXPIRY_RULE = {
    "trigger": "before_expiry",
    "days": 30,
    "recipients": ["safety@example.com"],
    "channels": ["email"],
}


@pytest.fixture
def today() -> date:
    return org_today("UTC", NOW)


def _cert(api, name: str, **extra) -> dict:
    body = {"name": name, "type": "employee", "validity": {"months": 12}, **extra}
    resp = api.post("/certifications", json=body)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def _assign(api, cert: dict, employee, **dates) -> dict:
    body = {
        "certification_id": cert["id"],
        "subject_type": "employee",
        "subject_id": str(employee.id),
        **{k: v.isoformat() for k, v in dates.items()},
    }
    resp = api.post("/assignments", json=body)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def _get(api, assignment: dict) -> dict:
    return api.get(f"/assignments/{assignment['id']}").get_json()


@pytest.fixture
def osha(api, org, make_employee):
    """OSHA 30 and OSHA 10 (satisfied by OSHA 30); Ada holds OSHA 10 without a record."""
    osha30 = _cert(api, "OSHA 30-Hour Construction")
    osha10 = _cert(api, "OSHA 10-Hour Construction", satisfied_by=[osha30["id"]])
    assert osha10["satisfied_by"] == [osha30["id"]]
    ada = make_employee(org, name="Ada")
    ten = _assign(api, osha10, ada)
    assert (ten["status"], ten["satisfied_via"]) == ("missing", None)
    return osha30, osha10, ada, ten


def test_osha10_is_valid_via_osha30_and_drops_back_to_missing_when_it_expires(
    api, org, osha, today, as_tenant, jobs
):
    osha30, _osha10, ada, ten = osha
    thirty = _assign(
        api, osha30, ada, issued_on=today - timedelta(days=10), expires_on=today + timedelta(60)
    )
    assert thirty["status"] == "valid"
    got = _get(api, ten)
    assert got["status"] == "valid"
    assert got["satisfied_via"] == {
        "certification_id": osha30["id"],
        "certification_name": "OSHA 30-Hour Construction",
        "assignment_id": thirty["id"],
    }
    listed = api.get("/assignments", query_string={"status": "valid"}).get_json()["items"]
    assert {a["id"] for a in listed} == {ten["id"], thirty["id"]}

    # 35 days on the OSHA 30 record expires soon, and so does OSHA 10 through it. (The ticks
    # the API writes requested run first, on the real clock: not between the pinned ones.)
    jobs.drain()
    tick_now(now=NOW + timedelta(days=35), org_id=org.id)
    assert _get(api, ten)["status"] == "expires_soon"
    # The day after its expiry it satisfies nothing: OSHA 10 shows its own (absent) record.
    tick_now(now=NOW + timedelta(days=61), org_id=org.id)
    assert _get(api, thirty)["status"] == "expired"
    got = _get(api, ten)
    assert (got["status"], got["satisfied_via"]) == ("missing", None)
    with as_tenant(org.id) as s:
        events = s.execute(
            select(StatusEvent.from_status, StatusEvent.to_status)
            .where(StatusEvent.assignment_id == uuid.UUID(ten["id"]))
            .order_by(StatusEvent.created_at)
        ).all()
    assert [tuple(e) for e in events] == [
        ("missing", "valid"),
        ("valid", "expires_soon"),
        ("expires_soon", "missing"),
    ]


def test_own_record_wins_a_tie_and_a_better_provider_wins(api, osha, today):
    osha30, _osha10, ada, ten = osha
    api.patch(f"/assignments/{ten['id']}", json={"issued_on": (today - timedelta(5)).isoformat()})
    assert (_get(api, ten)["status"], _get(api, ten)["satisfied_via"]) == ("valid", None)
    _assign(api, osha30, ada, issued_on=today - timedelta(days=1))
    assert _get(api, ten)["satisfied_via"] is None  # both valid: its own record stands
    # Its own record expires: the OSHA 30 one provides.
    api.patch(
        f"/assignments/{ten['id']}",
        json={
            "issued_on": (today - timedelta(400)).isoformat(),
            "expires_on": (today - timedelta(35)).isoformat(),
        },
    )
    got = _get(api, ten)
    assert got["status"] == "valid"
    assert got["satisfied_via"]["certification_id"] == osha30["id"]


def test_dependents_follow_renewal_revocation_and_deletion_of_the_provider(api, osha, today):
    osha30, _osha10, ada, ten = osha
    thirty = _assign(
        api, osha30, ada, issued_on=today - timedelta(400), expires_on=today - timedelta(1)
    )
    assert _get(api, ten)["status"] == "missing"  # an expired OSHA 30 satisfies nothing
    renewed = api.post(f"/assignments/{thirty['id']}/renew", json={})
    assert renewed.status_code == 200
    assert _get(api, ten)["status"] == "valid"
    revoked = api.post(f"/assignments/{thirty['id']}/revoke", json={"reason": "forged"})
    assert revoked.status_code == 200
    assert (_get(api, ten)["status"], _get(api, ten)["satisfied_via"]) == ("missing", None)
    again = _assign(api, osha30, ada, issued_on=today)
    assert _get(api, ten)["satisfied_via"]["assignment_id"] == again["id"]
    assert api.delete(f"/assignments/{again['id']}").status_code == 204
    assert (_get(api, ten)["status"], _get(api, ten)["satisfied_via"]) == ("missing", None)


def test_a_revoked_record_stays_revoked_and_an_exemption_changes_no_status(api, osha, today):
    osha30, _osha10, ada, ten = osha
    thirty = _assign(api, osha30, ada, issued_on=today)
    assert api.post(f"/assignments/{ten['id']}/revoke", json={"reason": "x"}).status_code == 200
    assert (_get(api, ten)["status"], _get(api, ten)["satisfied_via"]) == ("revoked", None)
    fresh = _assign(api, _osha10_of(api, ten), ada)
    assert _get(api, fresh)["status"] == "valid"  # a new assignment is satisfied again
    exempt = api.post(f"/assignments/{thirty['id']}/exemption", json={"reason": "n/a"})
    assert exempt.status_code == 200
    assert _get(api, fresh)["status"] == "valid"  # the record still proves the training


def _osha10_of(api, assignment: dict) -> dict:
    return {"id": assignment["certification_id"]}


def test_changing_satisfied_by_starts_one_recompute_job(api, org, osha, today, jobs):
    osha30, osha10, ada, ten = osha
    other = _cert(api, "First aid")
    _assign(api, other, ada, issued_on=today)
    resp = api.patch(f"/certifications/{osha10['id']}", json={"satisfied_by": [other["id"]]})
    assert resp.status_code == 200, resp.get_json()
    assert [j["kind"] for j in resp.get_json()["jobs"]] == ["recompute"]
    jobs.drain()
    assert _get(api, ten)["satisfied_via"]["certification_id"] == other["id"]
    resp = api.patch(f"/certifications/{osha10['id']}", json={"satisfied_by": []})
    assert resp.get_json()["satisfied_by"] == []
    jobs.drain()
    assert (_get(api, ten)["status"], _get(api, ten)["satisfied_via"]) == ("missing", None)
    # Unchanged links start nothing.
    same = api.patch(f"/certifications/{osha10['id']}", json={"satisfied_by": []})
    assert same.get_json()["jobs"] == []


def test_satisfied_by_refuses_other_types_cycles_and_unknown_ids(api, org, osha, make_org):
    osha30, osha10, _ada, _ten = osha
    crane = _cert(api, "Crane inspection", type="asset")
    resp = api.patch(f"/certifications/{osha10['id']}", json={"satisfied_by": [crane["id"]]})
    assert resp.status_code == 422
    assert "satisfied_by" in resp.get_json()["errors"]
    resp = api.post(
        "/certifications",
        json={"name": "Mixed", "type": "asset", "satisfied_by": [osha30["id"]]},
    )
    assert resp.status_code == 422
    assert "satisfied_by" in resp.get_json()["errors"]
    # OSHA 30 satisfied by OSHA 10 closes a cycle; so does a certification listing itself.
    for providers in ([osha10["id"]], [osha30["id"]]):
        resp = api.patch(f"/certifications/{osha30['id']}", json={"satisfied_by": providers})
        assert resp.status_code == 409, resp.get_json()
        assert "satisfied_by" in resp.get_json()["errors"]
    # A provider's type cannot change away from its dependents'.
    resp = api.patch(f"/certifications/{osha30['id']}", json={"type": "asset"})
    assert resp.status_code == 422
    assert "type" in resp.get_json()["errors"]
    assert api.get(f"/certifications/{osha30['id']}").get_json()["satisfied_by"] == []
    assert api.get(f"/certifications/{osha10['id']}").get_json()["satisfied_by"] == [osha30["id"]]


def test_no_reminders_nor_tasks_for_an_assignment_satisfied_via_another(
    api, org, make_employee, today, as_tenant, smtp
):
    """Also while the worker's tick runs meanwhile: on SQLite the assignment's insert under a
    savepoint was committed before its status and provider were set (infra.database), and a
    tick in between reminded about it."""
    osha30 = _cert(api, "OSHA 30")
    osha10 = _cert(
        api,
        "OSHA 10",
        satisfied_by=[osha30["id"]],
        notification_rules=[EXPIRY_RULE],
        task_rules=[{"days_before_expiry": 30, "assignee": "holder"}],
    )
    ada, bob = make_employee(org, name="Ada"), make_employee(org, name="Bob")
    _assign(api, osha30, ada, issued_on=today)
    expiring = {"issued_on": today - timedelta(355), "expires_on": today + timedelta(10)}
    covered, uncovered = (
        _assign(api, osha10, ada, **expiring),
        _assign(api, osha10, bob, **expiring),
    )
    assert (covered["status"], uncovered["status"]) == ("valid", "expires_soon")
    assert covered["satisfied_via"] is not None
    with as_tenant(org.id) as s:
        evaluate_rules(s, org.id, today)
        evaluate_task_rules(s, org.id, today)
        s.commit()
        noted = {str(i) for i in s.scalars(select(Notification.assignment_id))}
        tasked = {str(i) for i in s.scalars(select(Task.assignment_id))}
    assert uncovered["id"] in noted
    assert uncovered["id"] in tasked
    # Bob's reminder is not for delivery: a later test's drain would run this org's queued
    # tick and send it to no SMTP server (cancelled rows are never created again).
    with as_tenant(org.id) as s:
        s.execute(update(Notification).values(status="cancelled"))
        s.commit()


def test_a_role_fanout_of_the_provider_satisfies_dependents_without_waiting_for_a_tick(
    api, org, make_role, make_employee, make_certification, make_certification_role
):
    """OSHA 30 linked to a role with `valid_when_added`: the fan-out job itself (no tick)
    makes the role members' OSHA 10 valid via their new OSHA 30 records."""
    role = make_role(org, name="Crane operator")
    ada = make_employee(org, name="Ada", role_id=role.id)
    osha30 = make_certification(org, name="OSHA 30", valid_when_added=True)
    osha10 = _cert(api, "OSHA 10", satisfied_by=[str(osha30.id)])
    ten = _assign(api, osha10, ada)
    # The link written directly (no outbox): only the call below fans it out.
    make_certification_role(org, osha30, role)
    assert _get(api, ten)["status"] == "missing"
    actors.fanout_certification(str(org.id), str(osha30.id))
    got = _get(api, ten)
    assert got["status"] == "valid"
    assert got["satisfied_via"]["certification_id"] == str(osha30.id)


def test_bulk_assign_and_bulk_renew_follow_equivalences(api, org, make_employee, today):
    osha30 = _cert(api, "OSHA 30")
    osha10 = _cert(api, "OSHA 10", satisfied_by=[osha30["id"]])
    ada = make_employee(org, name="Ada")
    old = _assign(
        api, osha30, ada, issued_on=today - timedelta(400), expires_on=today - timedelta(1)
    )

    def bulk(cert: dict, action: str) -> dict:
        body = {
            "action": action,
            "certification_id": cert["id"],
            "subject_type": "employee",
            "subject_ids": [str(ada.id)],
        }
        resp = api.post("/assignments/bulk", json=body)
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()["rows"][0]

    ten = {"id": bulk(osha10, "assign")["assignment_id"]}
    assert _get(api, ten)["status"] == "missing"  # an expired OSHA 30 satisfies nothing
    bulk(osha30, "renew")
    got = _get(api, ten)
    assert got["status"] == "valid"
    assert got["satisfied_via"]["assignment_id"] == old["id"]
