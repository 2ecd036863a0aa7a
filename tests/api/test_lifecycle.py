"""The assignment lifecycle of real admins, over HTTP: undo a mistake, exemptions, leavers,
safe renewals, and validity changes that leave recorded expiries alone."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from certifications.automation.models import Notification, Task
from certifications.automation.notifications import evaluate_rules
from certifications.automation.tasks import evaluate_task_rules
from infra.database import utcnow
from tenancy.organizations import org_today

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
