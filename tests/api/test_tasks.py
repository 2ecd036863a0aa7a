"""Tasks people can act on (issue 14, point 6) and names where ids are (point 7), over HTTP."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from certifications.automation.notifications import evaluate_rules
from certifications.automation.tasks import evaluate_task_rules
from tests.support.queries import data_only

TODAY = date(2026, 11, 29)
SOON = TODAY + timedelta(days=5)
RULE = {"days_before_expiry": 30, "assignee": "holder"}


def _open_tasks(as_tenant, org, today=TODAY):
    with as_tenant(org.id) as s:
        evaluate_task_rules(s, org.id, today)
        s.commit()


def _task_of(api, assignment_id):
    items = api.get(f"/tasks?assignment_id={assignment_id}").get_json()["items"]
    assert len(items) == 1, items
    return items[0]


def test_patch_task_reassigns_reschedules_annotates_and_cancels(
    api, org, make_org, as_tenant, make_employee, make_certification, make_assignment
):
    cert = make_certification(org, name="First Aid", task_rules=[RULE])
    holder = make_employee(org, name="Ana Holder")
    deputy = make_employee(org, name="Dee Deputy")
    asg = make_assignment(cert, holder, expires_on=SOON)
    _open_tasks(as_tenant, org)
    task = _task_of(api, asg.id)
    assert task["assignee_id"] == str(holder.id)
    assert task["title"] == "Renew First Aid — Ana Holder"

    got = api.patch(f"/tasks/{task['id']}", json={"assignee_id": str(deputy.id)})
    assert got.status_code == 200, got.get_json()
    assert got.get_json()["assignee_id"] == str(deputy.id)
    assert got.get_json()["status"] == "open"

    later = (SOON + timedelta(days=7)).isoformat()
    got = api.patch(f"/tasks/{task['id']}", json={"due_on": later, "note": "Booked for Monday"})
    assert got.status_code == 200, got.get_json()
    assert (got.get_json()["due_on"], got.get_json()["note"]) == (later, "Booked for Monday")
    assert got.get_json()["assignee_id"] == str(deputy.id)  # untouched fields stay

    got = api.patch(f"/tasks/{task['id']}", json={"status": "cancelled"})
    assert got.status_code == 200, got.get_json()
    assert got.get_json()["status"] == "cancelled"
    assert got.get_json()["closed_at"] is not None
    assert api.get("/tasks?status=cancelled").get_json()["items"][0]["id"] == task["id"]

    got = api.patch(f"/tasks/{task['id']}", json={"status": "open"})
    assert (got.get_json()["status"], got.get_json()["closed_at"]) == ("open", None)
    got = api.patch(f"/tasks/{task['id']}", json={"assignee_id": None})
    assert got.get_json()["assignee_id"] is None


def test_patch_task_refuses_foreign_unknown_and_empty(
    api, org, make_org, as_tenant, make_employee, make_certification, make_assignment
):
    cert = make_certification(org, task_rules=[RULE])
    holder = make_employee(org)
    asg = make_assignment(cert, holder, expires_on=SOON)
    _open_tasks(as_tenant, org)
    task = _task_of(api, asg.id)
    stranger = make_employee(make_org())
    for body in (
        {"assignee_id": str(stranger.id)},
        {"assignee_id": "6f0b4c52-8a3e-4e58-9f1d-3c2a1b0e9d87"},
    ):
        got = api.patch(f"/tasks/{task['id']}", json=body)
        assert got.status_code == 422, got.get_json()
        assert "assignee_id" in str(got.get_json())
    for body in ({}, {"status": "closed"}, {"due_on": "2026-02-30"}, {"note": "a\x00b"}):
        assert api.patch(f"/tasks/{task['id']}", json=body).status_code == 422, body
    assert _task_of(api, asg.id)["assignee_id"] == str(holder.id)


def test_asset_tasks_go_to_the_default_assignee_or_the_certifications_own(
    api, org, make_org, as_tenant, make_employee, make_subject, make_certification, make_assignment
):
    manager = make_employee(org, name="Site Manager")
    inspector = make_employee(org, name="Crane Inspector")
    permit = make_certification(org, name="Excavation Permit", type="location", task_rules=[RULE])
    crane = make_certification(org, name="Crane Check", type="asset", task_rules=[RULE])
    site = make_subject(org, "location", name="Site North")
    lift = make_subject(org, "asset", name="Crane 7")
    on_site = make_assignment(permit, site, expires_on=SOON)
    on_lift = make_assignment(crane, lift, expires_on=SOON)

    stranger = make_employee(make_org())
    refused = api.patch("/org", json={"default_task_assignee_id": str(stranger.id)})
    assert refused.status_code == 422
    assert "default_task_assignee_id" in str(refused.get_json())
    got = api.patch("/org", json={"default_task_assignee_id": str(manager.id)})
    assert got.status_code == 200, got.get_json()
    assert got.get_json()["default_task_assignee_id"] == str(manager.id)
    refused = api.patch(f"/certifications/{crane.id}", json={"task_assignee_id": str(stranger.id)})
    assert refused.status_code == 422
    assert "task_assignee_id" in str(refused.get_json())
    got = api.patch(f"/certifications/{crane.id}", json={"task_assignee_id": str(inspector.id)})
    assert got.status_code == 200, got.get_json()
    assert got.get_json()["task_assignee_id"] == str(inspector.id)

    _open_tasks(as_tenant, org)
    site_task, lift_task = _task_of(api, on_site.id), _task_of(api, on_lift.id)
    assert site_task["assignee_id"] == str(manager.id)
    assert site_task["title"] == "Renew Excavation Permit — Site North"
    assert lift_task["assignee_id"] == str(inspector.id)
    assert lift_task["title"] == "Renew Crane Check — Crane 7"


def test_task_list_filters(
    api, org, make_org, as_tenant, make_employee, make_subject, make_certification, make_assignment
):
    first_aid = make_certification(org, task_rules=[RULE])
    crane = make_certification(org, type="asset", task_rules=[RULE])
    ana, bo = make_employee(org), make_employee(org)
    lift = make_subject(org, "asset")
    a1 = make_assignment(first_aid, ana, expires_on=SOON)
    make_assignment(first_aid, bo, expires_on=SOON + timedelta(days=10))
    a3 = make_assignment(crane, lift, expires_on=SOON)
    _open_tasks(as_tenant, org)

    def ids(query):
        got = api.get(f"/tasks?{query}")
        assert got.status_code == 200, got.get_json()
        return {t["assignment_id"] for t in got.get_json()["items"]}

    assert len(ids("")) == 3
    assert ids(f"assignee_id={ana.id}") == {str(a1.id)}
    assert ids("subject_type=asset") == {str(a3.id)}
    assert ids(f"subject_id={ana.id}") == {str(a1.id)}
    assert ids(f"certification_id={crane.id}") == {str(a3.id)}
    assert ids(f"due_before={SOON.isoformat()}") == {str(a1.id), str(a3.id)}
    assert ids("status=open") == ids("")
    other = make_org()
    foreign = make_employee(other)
    assert ids(f"assignee_id={foreign.id}") == set()
    assert ids(f"certification_id={make_certification(other).id}") == set()
    assert api.get("/tasks?subject_type=planet").status_code == 422
    assert api.get("/tasks?due_before=99999-01-01").status_code == 422


@pytest.mark.parametrize("path", ["/assignments", "/tasks", "/notifications"])
def test_every_record_names_its_certification_and_subject_in_one_query_per_page(
    path,
    org,
    api,
    as_tenant,
    make_employees,
    make_subject,
    make_certification,
    make_assignment,
    count_queries,
):
    rules = [{"trigger": "before_expiry", "days": 30, "recipients": ["admins"]}]
    cert = make_certification(org, name="Forklift", task_rules=[RULE], notification_rules=rules)
    lift_cert = make_certification(
        org, name="Lift Check", type="asset", task_rules=[RULE], notification_rules=rules
    )
    people = make_employees(org, 3)
    lift = make_subject(org, "asset", name="Lift A")
    for person in people:
        make_assignment(cert, person, expires_on=SOON)
    make_assignment(lift_cert, lift, expires_on=SOON)
    with as_tenant(org.id) as s:
        org_row = s.get(type(org), org.id)
        org_row.admin_emails = ["hse@example.test"]
        s.commit()
    with as_tenant(org.id) as s:
        evaluate_task_rules(s, org.id, TODAY)
        evaluate_rules(s, org.id, TODAY)
        s.commit()

    api.get(f"{path}?limit=1")  # the organization is cached per worker from here on
    with count_queries(where=data_only) as small:
        page = api.get(f"{path}?limit=2").get_json()["items"]
    with count_queries(where=data_only) as full:
        items = api.get(f"{path}?limit=50").get_json()["items"]
    assert len(page) == 2
    assert len(items) == 4
    assert len(full) == len(small), full  # never one query per row
    names = {(i["certification_name"], i["subject_type"], i["subject_name"]) for i in items}
    assert names == {("Forklift", "employee", p.name) for p in people} | {
        ("Lift Check", "asset", "Lift A")
    }
    for item in items:
        assert item["subject_id"]
    one = api.get(f"{path}/{items[0]['id']}") if path != "/notifications" else None
    if one is not None:
        assert one.get_json()["subject_name"] == items[0]["subject_name"]


def test_history_entries_carry_names(api, org, make_employee, make_certification, make_assignment):
    cert = make_certification(org, name="Scaffolding")
    who = make_employee(org, name="Sam Scaff")
    asg = make_assignment(cert, who)
    assert api.post(f"/assignments/{asg.id}/renew", json={}).status_code == 200
    got = api.get(f"/assignments/{asg.id}/history").get_json()
    assert (got["certification_name"], got["subject_name"]) == ("Scaffolding", "Sam Scaff")
    for entry in [*got["cycles"], *got["status_events"]]:
        assert (entry["certification_name"], entry["subject_name"]) == ("Scaffolding", "Sam Scaff")
        assert (entry["subject_type"], entry["subject_id"]) == ("employee", str(who.id))
