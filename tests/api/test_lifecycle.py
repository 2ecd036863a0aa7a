"""The assignment lifecycle of real admins, over HTTP: undo a mistake, exemptions, leavers,
safe renewals, and validity changes that leave recorded expiries alone."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from certifications.automation.models import Notification, Task
from certifications.automation.notifications import evaluate_rules
from certifications.automation.tasks import evaluate_task_rules
from infra.database import utcnow
from tenancy.organizations import org_today
from workers.tick import tick_now

RULE = {
    "trigger": "before_expiry",
    "days": 30,
    "recipients": ["holder", "admins"],
    "channels": ["email"],
}
TASK_RULE = {"days_before_expiry": 30, "assignee": "holder"}


@pytest.fixture
def today() -> date:
    return org_today("UTC", utcnow())


def _iso(d: date) -> str:
    return d.isoformat()


def _assign(api, cert, subject, **extra):
    body = {
        "certification_id": str(cert.id),
        "subject_type": cert.type,
        "subject_id": str(subject.id),
        **extra,
    }
    return api.post("/assignments", json=body)


def _automate(as_tenant, org, today):
    """Evaluate the rules now, as the tick would (without queueing any delivery)."""
    with as_tenant(org.id) as s:
        evaluate_task_rules(s, org.id, today)
        evaluate_rules(s, org.id, today)
        s.commit()


def _automation_of(as_tenant, org, assignment_id):
    assignment_id = uuid.UUID(str(assignment_id))
    with as_tenant(org.id) as s:
        notes = s.scalars(select(Notification).where(Notification.assignment_id == assignment_id))
        tasks = s.scalars(select(Task).where(Task.assignment_id == assignment_id))
        return sorted(n.status for n in notes), sorted(t.status for t in tasks)


def _expiring(org, make_certification, make_employee, make_assignment, today, **rules):
    cert = make_certification(org, validity_months=12, **rules)
    emp = make_employee(org, name="Ada", email="ada@example.test")
    # Built directly (no API write): nothing asks for the org's tick, so the reminders stay
    # pending until the test evaluates the rules itself (`_automate`) and nothing is delivered.
    a = make_assignment(
        cert,
        emp,
        issued_on=today - timedelta(days=355),
        expires_on=today + timedelta(days=10),
        status="expires_soon",
    )
    return cert, emp, str(a.id)


@pytest.fixture
def expiring(org, make_certification, make_employee, make_assignment, today):
    """A manual assignment expiring in 10 days on a certification with a reminder and a task."""
    return _expiring(
        org,
        make_certification,
        make_employee,
        make_assignment,
        today,
        notification_rules=[RULE],
        task_rules=[TASK_RULE],
    )


@pytest.fixture
def expiring_quietly(org, make_certification, make_employee, make_assignment, today):
    """The same without rules (for tests running whole ticks, which would deliver)."""
    return _expiring(org, make_certification, make_employee, make_assignment, today)


@pytest.fixture
def current(api, org, make_certification, make_employee):
    """Valid until 2028: issued 2026-03-01, 24 months."""
    cert = make_certification(org, validity_months=24, warning_days=30)
    emp = make_employee(org)
    body = _assign(api, cert, emp, issued_on="2026-03-01").get_json()
    assert body["expires_on"] == "2028-03-01"
    return body["id"]


# --- 1. remove a mistake -------------------------------------------------------------------


def test_delete_a_manual_assignment_removes_it_everywhere_but_the_audit_trail(
    api, org, expiring, as_tenant, today
):
    cert, emp, aid = expiring
    _automate(as_tenant, org, today)
    assert _automation_of(as_tenant, org, aid) == (["pending"], ["open"])
    assert api.get("/compliance/summary").get_json()["totals"]["required"] == 1

    resp = api.delete(f"/assignments/{aid}")
    assert resp.status_code == 204, resp.get_json()

    assert api.get(f"/assignments/{aid}").status_code == 404
    assert api.get("/assignments").get_json()["items"] == []
    assert api.get(f"/notifications?assignment_id={aid}").get_json()["items"] == []
    assert api.get(f"/tasks?assignment_id={aid}").get_json()["items"] == []
    assert api.get("/compliance/summary").get_json()["totals"]["required"] == 0
    assert api.get("/compliance/forecast").get_json()["total"]["renewals"] == 0
    view = api.get("/views/employees").get_json()["items"]
    assert [v["certifications"] for v in view] == [[]]
    _automate(as_tenant, org, today)  # the rules find nothing to remind any more
    assert _automation_of(as_tenant, org, aid) == ([], [])
    events = api.get(f"/audit-events?entity_id={aid}").get_json()["items"]
    actions = {(e["entity_type"], e["action"]) for e in events}
    assert ("assignment", "delete") in actions  # the row as it was
    history = next(e for e in events if e["entity_type"] == "assignment_history")
    assert history["before"]["cycles"][0]["expires_on"] == _iso(today + timedelta(days=10))
    # Deleted, so the same certification can be assigned again.
    assert _assign(api, cert, emp).status_code == 201
    assert api.delete(f"/assignments/{aid}").status_code == 404


def test_delete_a_rule_required_assignment_points_to_an_exemption(
    api, org, make_certification, make_employee, make_assignment
):
    cert = make_certification(org, validity_months=12)
    emp = make_employee(org)
    a = make_assignment(cert, emp, source="role")
    resp = api.delete(f"/assignments/{a.id}")
    assert resp.status_code == 409
    assert "exempt" in resp.get_json()["message"]
    assert api.get(f"/assignments/{a.id}").status_code == 200


def test_delete_needs_the_delete_scope(api_for, org, expiring):
    _cert, _emp, aid = expiring
    api = api_for(org, scopes=["certifications:read", "certifications:update"])
    assert api.delete(f"/assignments/{aid}").status_code == 403
    assert api.get(f"/assignments/{aid}").status_code == 200


# --- 2. exemptions -------------------------------------------------------------------------


def test_exemption_shape_set_and_lift(api, org, expiring_quietly, today):
    _cert, _emp, aid = expiring_quietly
    assert api.get(f"/assignments/{aid}").get_json()["exemption"] is None
    until = _iso(today + timedelta(days=90))
    resp = api.post(f"/assignments/{aid}/exemption", json={"reason": "On leave", "until": until})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["status"] == "expires_soon"  # keeps its computed status
    ex = body["exemption"]
    assert (ex["reason"], ex["until"], ex["by"]) == ("On leave", until, "tester")
    assert datetime.fromisoformat(ex["at"]).tzinfo is not None
    assert api.get(f"/assignments/{aid}").get_json()["exemption"] == ex

    lifted = api.delete(f"/assignments/{aid}/exemption")
    assert lifted.status_code == 200
    assert lifted.get_json()["exemption"] is None
    assert api.delete(f"/assignments/{aid}/exemption").status_code == 200  # idempotent


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "reason"),
        ({"reason": ""}, "reason"),
        ({"reason": "x", "until": "2001-01-01"}, "until"),
        ({"reason": "x", "until": "soon"}, "until"),
    ],
)
def test_exemption_input_is_checked(api, expiring, body, field):
    _cert, _emp, aid = expiring
    resp = api.post(f"/assignments/{aid}/exemption", json=body)
    assert resp.status_code == 422, resp.get_json()
    assert field in str(resp.get_json()["errors"])


def test_an_exempt_assignment_changes_the_compliance_ratio(
    api, org, make_certification, make_employee, today
):
    cert = make_certification(org, name="Working at Height", validity_months=12)
    fine, lapsed = make_employee(org), make_employee(org)
    _assign(api, cert, fine, issued_on=_iso(today - timedelta(days=10)))
    lapsed_id = _assign(api, cert, lapsed, issued_on=_iso(today - timedelta(days=800))).get_json()[
        "id"
    ]
    totals = api.get("/compliance/summary").get_json()["totals"]
    assert (totals["required"], totals["compliant"], totals["compliance"]) == (2, 1, 0.5)
    assert totals["exempt"] == 0

    api.post(f"/assignments/{lapsed_id}/exemption", json={"reason": "Long-term sick leave"})

    body = api.get("/compliance/summary").get_json()
    totals = body["totals"]
    assert (totals["required"], totals["compliant"], totals["compliance"]) == (1, 1, 1.0)
    assert totals["exempt"] == 1
    assert totals["counts"]["expired"] == 0
    assert body["certifications"][0]["exempt"] == 1
    tree = api.get("/views/groups").get_json()
    assert tree["ungrouped"][0]["compliance"] == 1.0
    # Views: the exempt one is listed with its status, counted under `exempt`.
    exempt_only = api.get("/views/employees?exempt=true").get_json()["items"]
    assert [r["id"] for r in exempt_only] == [str(lapsed.id)]
    entry = exempt_only[0]["certifications"][0]
    assert (entry["status"], entry["exempt"]) == ("expired", True)
    assert exempt_only[0]["summary"]["exempt"] == 1
    assert exempt_only[0]["summary"]["expired"] == 0
    not_exempt = api.get("/views/employees?exempt=false").get_json()["items"]
    assert [r["id"] for r in not_exempt] == [str(fine.id)]
    assert api.get("/views/employees?status=expired&exempt=false").get_json()["items"] == []


def test_an_exempt_assignment_gets_no_reminders_nor_tasks(
    api, org, expiring, as_tenant, today, smtp, jobs
):
    _cert, _emp, aid = expiring
    _automate(as_tenant, org, today)
    api.post(f"/assignments/{aid}/exemption", json={"reason": "Contract ends next week"})
    # What was pending is withdrawn by the exemption itself...
    assert _automation_of(as_tenant, org, aid) == (["cancelled"], ["cancelled"])
    assert api.get("/compliance/forecast").get_json()["total"]["renewals"] == 0
    # ...and the rules create nothing new for it (a new rule on the next evaluation either).
    with as_tenant(org.id) as s:
        s.execute(
            Notification.__table__.delete().where(Notification.assignment_id == uuid.UUID(aid))
        )
        s.execute(Task.__table__.delete().where(Task.assignment_id == uuid.UUID(aid)))
        s.commit()
    _automate(as_tenant, org, today)
    assert _automation_of(as_tenant, org, aid) == ([], [])
    api.delete(f"/assignments/{aid}/exemption")  # asks for the org's tick, which delivers
    jobs.drain()
    _automate(as_tenant, org, today)
    notes, tasks = _automation_of(as_tenant, org, aid)
    assert notes == ["sent"]
    assert tasks == ["open"]
    assert ["ada@example.test"] in [m.rcpt_tos for m in smtp.messages]


def test_an_exemption_ends_by_itself_after_its_until_day(api, org, expiring_quietly, today):
    _cert, _emp, aid = expiring_quietly
    api.post(f"/assignments/{aid}/exemption", json={"reason": "x", "until": _iso(today)})
    now = utcnow()
    tick_now(now=now, org_id=org.id)  # still its last day
    assert api.get(f"/assignments/{aid}").get_json()["exemption"] is not None
    report = tick_now(now=now + timedelta(days=1), org_id=org.id)["ticks"][str(org.id)]
    assert report["exemptions_ended"] == 1
    assert api.get(f"/assignments/{aid}").get_json()["exemption"] is None


# --- 3. leavers ----------------------------------------------------------------------------


def test_a_deactivated_employee_receives_nothing_across_two_ticks(
    make_org, api_for, make_certification, make_employee, make_assignment, as_tenant, smtp, jobs
):
    boss = f"boss.{uuid.uuid4().hex[:8]}@example.test"
    org = make_org(admin_emails=[boss])
    api = api_for(org)
    cert = make_certification(org, validity_months=12, notification_rules=[RULE])
    leaver = make_employee(org, name="Leaver", email=f"leaver.{uuid.uuid4().hex[:8]}@example.test")
    stayer = make_employee(org, name="Stayer", email=f"stayer.{uuid.uuid4().hex[:8]}@example.test")
    now = datetime.now(UTC)
    today = org_today("UTC", now)
    for holder in (leaver, stayer):
        make_assignment(
            cert,
            holder,
            issued_on=today - timedelta(days=355),
            expires_on=today + timedelta(days=5),
            status="expires_soon",
        )
    _automate(as_tenant, org, today)  # the reminders exist, pending, not queued yet
    resp = api.patch(f"/employees/{leaver.id}", json={"active": False})
    assert resp.status_code == 200, resp.get_json()
    for hour in (1, 2):  # two ticks, each delivering what it queued
        tick_now(now=now + timedelta(hours=hour), org_id=org.id)
        jobs.drain()
    ours = {boss, leaver.email, stayer.email}
    recipients = sorted(r for m in smtp.messages for r in m.rcpt_tos if r in ours)
    # The stayer's reminder went to the stayer and the admin; nothing about the leaver.
    assert recipients == sorted([boss, stayer.email])
    for m in smtp.messages:
        if boss in m.rcpt_tos:
            assert "Leaver" not in m.part("plain")


def test_leavers_are_out_of_views_summary_and_forecast_unless_asked(
    api, org, make_certification, make_employee, today
):
    cert = make_certification(org, validity_months=12)
    stays, leaves = make_employee(org, name="Stays"), make_employee(org, name="Leaves")
    expiring = {
        "issued_on": _iso(today - timedelta(days=355)),
        "expires_on": _iso(today + timedelta(days=5)),
    }
    _assign(api, cert, stays, **expiring)
    _assign(api, cert, leaves, **expiring)
    assert api.delete(f"/employees/{leaves.id}").status_code == 204

    names = [r["name"] for r in api.get("/views/employees").get_json()["items"]]
    assert names == ["Stays"]
    soon = api.get("/views/employees?status=expires_soon").get_json()["items"]
    assert [r["name"] for r in soon] == ["Stays"]
    every = api.get("/views/employees?include_inactive=true").get_json()["items"]
    assert sorted(r["name"] for r in every) == ["Leaves", "Stays"]
    inactive = api.get("/views/employees?active=false").get_json()["items"]
    assert [r["name"] for r in inactive] == ["Leaves"]
    assert api.get("/compliance/summary").get_json()["totals"]["required"] == 1
    assert (
        api.get("/compliance/summary?include_inactive=true").get_json()["totals"]["required"] == 2
    )
    assert api.get("/compliance/forecast").get_json()["total"]["renewals"] == 1
    assert (
        api.get("/compliance/forecast?include_inactive=true").get_json()["total"]["renewals"] == 2
    )


@pytest.mark.parametrize("kind", ["employee", "asset", "client", "location"])
def test_a_manual_assignment_to_an_inactive_subject_is_refused(
    api, org, make_certification, make_subject, kind
):
    cert = make_certification(org, type=kind, validity_months=12)
    subject = make_subject(org, kind, active=False)
    resp = _assign(api, cert, subject)
    assert resp.status_code == 409, resp.get_json()
    assert "inactive" in resp.get_json()["message"]
    assert api.get("/assignments").get_json()["items"] == []


def test_deactivating_cancels_pending_reminders_and_open_tasks(
    api, org, expiring, as_tenant, today
):
    _cert, emp, aid = expiring
    _automate(as_tenant, org, today)
    assert api.patch(f"/employees/{emp.id}", json={"active": False}).status_code == 200
    assert _automation_of(as_tenant, org, aid) == (["cancelled"], ["cancelled"])
    _automate(as_tenant, org, today)
    assert _automation_of(as_tenant, org, aid) == (["cancelled"], ["cancelled"])


def test_deactivating_an_asset_in_bulk_withdraws_its_reminders(
    api, org, make_certification, make_subject, make_assignment, as_tenant, today
):
    to_safety = {**RULE, "recipients": ["safety@example.test"]}
    cert = make_certification(org, type="asset", validity_months=12, notification_rules=[to_safety])
    asset = make_subject(org, "asset", name="Crane", external_id="CR-1")
    aid = make_assignment(
        cert,
        asset,
        issued_on=today - timedelta(days=355),
        expires_on=today + timedelta(days=5),
        status="expires_soon",
    ).id
    _automate(as_tenant, org, today)
    assert _automation_of(as_tenant, org, aid) == (["pending"], [])
    resp = api.post(
        "/assets/bulk", json={"items": [{"external_id": "CR-1", "name": "Crane", "active": False}]}
    )
    assert resp.status_code in (200, 207), resp.get_json()
    assert _automation_of(as_tenant, org, aid) == (["cancelled"], [])


def test_reactivation_restores_role_requirements(api, org, make_role, make_employee, jobs):
    role = make_role(org)
    emp = make_employee(org, role_id=role.id)
    body = {"name": "Induction", "type": "employee", "role_ids": [str(role.id)]}
    assert api.post("/certifications", json=body).status_code == 201
    jobs.drain()

    def required() -> list[bool]:
        items = api.get(f"/assignments?subject_id={emp.id}").get_json()["items"]
        return [a["required"] for a in items]

    api.patch(f"/employees/{emp.id}", json={"active": False})
    jobs.drain()
    assert required() == []  # never recorded: the leaver's role assignment goes
    assert api.get("/compliance/summary").get_json()["totals"]["required"] == 0
    api.patch(f"/employees/{emp.id}", json={"active": True})
    jobs.drain()
    assert required() == [True]
    assert api.get("/compliance/summary").get_json()["totals"]["required"] == 1


# --- 4. safe renewals ----------------------------------------------------------------------


def test_a_renewal_before_the_current_cycle_is_refused(api, current):
    resp = api.post(f"/assignments/{current}/renew", json={"issued_on": "2020-01-01"})
    assert resp.status_code == 409, resp.get_json()
    message = resp.get_json()["message"]
    assert "2026-03-01" in message
    assert "2028-03-01" in message
    assert "PATCH" in message
    body = api.get(f"/assignments/{current}").get_json()
    assert (body["cycle"], body["expires_on"], body["status"]) == (1, "2028-03-01", "valid")


def test_renewing_with_the_current_dates_opens_no_cycle(api, current):
    resp = api.post(f"/assignments/{current}/renew", json={"issued_on": "2026-03-01"})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["cycle"] == 1
    history = api.get(f"/assignments/{current}/history").get_json()
    assert len(history["cycles"]) == 1
    later = api.post(f"/assignments/{current}/renew", json={"issued_on": "2026-04-01"})
    assert later.get_json()["cycle"] == 2


@pytest.mark.parametrize("how", ["create", "patch", "renew"])
def test_effective_before_issued_is_refused_everywhere(
    api, org, make_certification, make_employee, current, how
):
    bad = {"issued_on": "2026-06-01", "effective_on": "2026-05-01"}
    if how == "create":
        cert = make_certification(org, validity_months=12)
        resp = _assign(api, cert, make_employee(org), **bad)
    elif how == "patch":
        resp = api.patch(f"/assignments/{current}", json=bad)
    else:
        resp = api.post(f"/assignments/{current}/renew", json=bad)
    assert resp.status_code == 422, resp.get_json()
    assert "effective_on" in resp.get_json()["errors"]


def test_renewing_closes_tasks_and_cancels_reminders_at_once(api, org, expiring, as_tenant, today):
    _cert, _emp, aid = expiring
    _automate(as_tenant, org, today)
    assert _automation_of(as_tenant, org, aid) == (["pending"], ["open"])
    resp = api.post(f"/assignments/{aid}/renew", json={"issued_on": _iso(today)})
    assert resp.status_code == 200, resp.get_json()
    notes, tasks = _automation_of(as_tenant, org, aid)
    assert set(notes) == {"cancelled"}
    assert tasks == ["closed"]


# --- 5. validity changes apply to new records ----------------------------------------------


def _job_result(api, jobs, body):
    jobs.drain()
    (job,) = [j for j in body["jobs"] if j["kind"] == "recompute"]
    got = api.get(f"/jobs/{job['id']}").get_json()
    assert got["state"] == "done", got
    return got["result"]


def test_a_new_validity_leaves_recorded_expiries_alone(api, current, jobs):
    cert_id = api.get(f"/assignments/{current}").get_json()["certification_id"]
    resp = api.patch(f"/certifications/{cert_id}", json={"validity": {"months": 12}})
    assert resp.status_code == 200, resp.get_json()
    assert _job_result(api, jobs, resp.get_json())["expiries"] == 0
    assert api.get(f"/assignments/{current}").get_json()["expires_on"] == "2028-03-01"
    # A cycle recorded from now on uses the new validity.
    renewed = api.post(f"/assignments/{current}/renew", json={"issued_on": "2026-04-01"})
    assert renewed.get_json()["expires_on"] == "2027-04-01"


def test_apply_to_current_moves_current_expiries_and_counts_them(api, current, jobs):
    cert_id = api.get(f"/assignments/{current}").get_json()["certification_id"]
    resp = api.patch(
        f"/certifications/{cert_id}",
        json={"validity": {"months": 12}, "apply_to_current": True},
    )
    assert resp.status_code == 200, resp.get_json()
    assert "apply_to_current" not in resp.get_json()
    assert _job_result(api, jobs, resp.get_json())["expiries"] == 1
    assert api.get(f"/assignments/{current}").get_json()["expires_on"] == "2027-03-01"


@pytest.mark.parametrize(
    ("validity", "warning_days", "code"),
    [
        ({"days": 30}, 30, 422),
        ({"days": 30}, 29, 201),
        ({"months": 1}, 28, 422),
        ({"months": 1}, 27, 201),
        ({"months": 12}, 365, 422),
        ({"months": 12}, 364, 201),
        (None, 3000, 201),
    ],
)
def test_warning_days_must_be_shorter_than_the_validity(api, validity, warning_days, code):
    body = {"name": f"C {validity} {warning_days}", "type": "employee", "validity": validity}
    resp = api.post("/certifications", json=body | {"warning_days": warning_days})
    assert resp.status_code == code, resp.get_json()
    if code == 422:
        assert "warning_days" in resp.get_json()["errors"]


def test_warning_days_is_checked_against_the_stored_validity_on_patch(api):
    cert = api.post(
        "/certifications",
        json={"name": "Short", "type": "employee", "validity": {"days": 10}, "warning_days": 5},
    ).get_json()
    resp = api.patch(f"/certifications/{cert['id']}", json={"warning_days": 10})
    assert resp.status_code == 422
    assert "warning_days" in resp.get_json()["errors"]
    shorter = api.patch(f"/certifications/{cert['id']}", json={"validity": {"days": 5}})
    assert shorter.status_code == 422  # the stored warning_days 5 ≥ 5 days
    assert "validity" in shorter.get_json()["errors"]
