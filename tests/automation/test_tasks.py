"""Renewal tasks: open N days before expiry, one per (assignment, rule, cycle), renewal closes."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select

from certifications.assignments.models import Assignment
from certifications.automation.models import Task
from certifications.automation.tasks import evaluate_task_rules
from tests.automation.conftest import TODAY

HOLDER_14 = {"days_before_expiry": 14, "assignee": "holder"}


def _evaluate(as_tenant, org, today=TODAY):
    with as_tenant(org.id) as s:
        report = evaluate_task_rules(s, org.id, today)
        s.commit()
    return report


def _tasks(as_tenant, org):
    with as_tenant(org.id) as s:
        return list(s.scalars(select(Task).order_by(Task.cycle, Task.due_on)))


def test_task_opens_on_the_day_for_the_holder_once(
    org, as_tenant, make_employee, make_certification, make_assignment
):
    cert = make_certification(org, name="First Aid", task_rules=[HOLDER_14])
    emp = make_employee(org)
    expires = TODAY + timedelta(days=15)
    asg = make_assignment(cert, emp, expires_on=expires)
    assert _evaluate(as_tenant, org)["created"] == 0
    assert _evaluate(as_tenant, org, TODAY + timedelta(days=1))["created"] == 1
    assert _evaluate(as_tenant, org, TODAY + timedelta(days=5))["created"] == 0
    (task,) = _tasks(as_tenant, org)
    assert (task.assignment_id, task.assignee_id, task.due_on, task.status, task.cycle) == (
        asg.id,
        emp.id,
        expires,
        "open",
        1,
    )
    assert task.title == f"Renew First Aid — {emp.name}"


def test_named_assignee_and_unassigned_for_subjects_that_are_not_employees(
    org, as_tenant, make_employee, make_asset, make_certification, make_assignment
):
    manager = make_employee(org, name="Manager")
    cert = make_certification(
        org, task_rules=[{"days_before_expiry": 30, "assignee": str(manager.id)}]
    )
    make_assignment(cert, make_employee(org), expires_on=TODAY + timedelta(days=3))
    crane = make_certification(org, type="asset", task_rules=[HOLDER_14])
    make_assignment(crane, make_asset(org), expires_on=TODAY + timedelta(days=3))
    # A named assignee who is not an employee of this org: the holder gets the task instead.
    ghost = make_certification(
        org, task_rules=[{"days_before_expiry": 30, "assignee": str(uuid.uuid4())}]
    )
    holder = make_employee(org)
    make_assignment(ghost, holder, expires_on=TODAY + timedelta(days=3))
    _evaluate(as_tenant, org)
    got = {(t.certification_id, t.assignee_id) for t in _tasks(as_tenant, org)}
    assert got == {(cert.id, manager.id), (crane.id, None), (ghost.id, holder.id)}


def test_renewal_closes_the_open_task_and_the_new_cycle_gets_its_own(
    org, as_tenant, make_employee, make_certification, make_assignment
):
    cert = make_certification(org, task_rules=[HOLDER_14])
    asg = make_assignment(cert, make_employee(org), expires_on=TODAY + timedelta(days=5))
    _evaluate(as_tenant, org)
    with as_tenant(org.id) as s:
        row = s.get(Assignment, asg.id)
        row.cycle, row.expires_on = 2, TODAY + timedelta(days=365)
        s.commit()
    report = _evaluate(as_tenant, org)
    assert report == {"created": 0, "closed": 1}
    (old,) = _tasks(as_tenant, org)
    assert (old.cycle, old.status) == (1, "closed")
    assert old.closed_at is not None
    _evaluate(as_tenant, org, TODAY + timedelta(days=360))
    assert [(t.cycle, t.status) for t in _tasks(as_tenant, org)] == [(1, "closed"), (2, "open")]


def test_revoked_assignment_gets_no_task_and_its_open_task_closes(
    org, as_tenant, make_employee, make_certification, make_assignment
):
    from datetime import UTC, datetime

    cert = make_certification(org, task_rules=[HOLDER_14])
    asg = make_assignment(cert, make_employee(org), expires_on=TODAY + timedelta(days=5))
    _evaluate(as_tenant, org)
    with as_tenant(org.id) as s:
        row = s.get(Assignment, asg.id)
        row.status, row.revoked_at, row.revoked_reason = "revoked", datetime.now(UTC), "left"
        s.commit()
    _evaluate(as_tenant, org)
    assert [t.status for t in _tasks(as_tenant, org)] == ["closed"]


def test_tasks_api_lists_filters_and_completes(
    org, as_tenant, api_for, make_org, make_employee, make_certification, make_assignment
):
    cert = make_certification(org, task_rules=[HOLDER_14])
    ada, bob = make_employee(org, name="Ada"), make_employee(org, name="Bob")
    make_assignment(cert, ada, expires_on=TODAY + timedelta(days=3))
    make_assignment(cert, bob, expires_on=TODAY + timedelta(days=10))
    _evaluate(as_tenant, org)
    api = api_for(org, sub="user-7")

    assert len(api.get("/tasks").get_json()["items"]) == 2
    page = api.get("/tasks?limit=1").get_json()
    second = api.get(f"/tasks?limit=1&cursor={page['next_cursor']}").get_json()
    assert [page["items"][0]["assignee_id"], second["items"][0]["assignee_id"]] == [
        str(ada.id),
        str(bob.id),
    ]
    mine = api.get(f"/tasks?assignee_id={bob.id}").get_json()["items"]
    assert [t["assignee_id"] for t in mine] == [str(bob.id)]
    soon = api.get(f"/tasks?due_before={(TODAY + timedelta(days=5)).isoformat()}").get_json()
    assert [t["assignee_id"] for t in soon["items"]] == [str(ada.id)]

    task_id = mine[0]["id"]
    done = api.patch(f"/tasks/{task_id}", json={"status": "done"})
    assert done.status_code == 200, done.get_json()
    assert (done.get_json()["status"], done.get_json()["completed_by"]) == ("done", "user-7")
    assert [t["id"] for t in api.get("/tasks?status=done").get_json()["items"]] == [task_id]
    assert [t["assignee_id"] for t in api.get("/tasks?status=open").get_json()["items"]] == [
        str(ada.id)
    ]
    assert api.get(f"/tasks/{task_id}").get_json()["status"] == "done"

    bad = api.patch(f"/tasks/{task_id}", json={"status": "finished"})
    assert bad.status_code == 422
    assert "status" in bad.get_json()["errors"]["json"]
    assert api.patch(f"/tasks/{task_id}", json={"status": "done", "x": 1}).status_code == 422
    assert api.get("/tasks?status=nope").status_code == 422
    assert api.get("/tasks?due_before=yesterday").status_code == 422

    read_only = api_for(org, scopes=["certifications:read"])
    assert read_only.patch(f"/tasks/{task_id}", json={"status": "open"}).status_code == 403

    other = api_for(make_org())
    assert other.get(f"/tasks/{task_id}").status_code == 404
    assert other.patch(f"/tasks/{task_id}", json={"status": "open"}).status_code == 404
    assert other.get("/tasks").get_json()["items"] == []
    assert api.get(f"/tasks/{task_id}").get_json()["status"] == "done"  # unchanged


def test_closed_task_cannot_be_completed(
    org, as_tenant, api, make_employee, make_certification, make_assignment
):
    cert = make_certification(org, task_rules=[HOLDER_14])
    asg = make_assignment(cert, make_employee(org), expires_on=TODAY + timedelta(days=5))
    _evaluate(as_tenant, org)
    with as_tenant(org.id) as s:
        s.get(Assignment, asg.id).cycle = 2
        s.commit()
    _evaluate(as_tenant, org)
    task = _tasks(as_tenant, org)[0]
    assert (task.cycle, task.status) == (1, "closed")
    assert api.patch(f"/tasks/{task.id}", json={"status": "done"}).status_code == 409


def test_tasks_need_the_hse_module(make_org, api_for):
    resp = api_for(make_org(modules=())).get("/tasks")
    assert resp.status_code == 403
    assert resp.get_json()["code"] == "module_disabled"
