"""Fan-out actors through the outbox and a real worker: jobs, directory triggers, duplicates."""

from __future__ import annotations

from sqlalchemy import func, select

from certifications.assignments.models import Assignment, StatusEvent
from jobs.outbox import request_job


def _count(as_tenant, org_id, model=Assignment):
    with as_tenant(org_id) as s:
        return s.scalar(select(func.count()).select_from(model))


def test_certification_fanout_job_runs_to_done(
    org, as_tenant, jobs, api, make_role, make_employees, make_certification
):
    role = make_role(org)
    make_employees(org, 5, role_id=role.id)
    cert = make_certification(org, role_ids=[role.id])
    with as_tenant(org.id) as s:
        job = request_job(
            s, "fanout_certification", job_kind="role_fanout", certification_id=cert.id
        )
        s.commit()
    jobs.drain()
    body = api.get(f"/jobs/{job.id}").get_json()
    assert body["state"] == "done", body
    assert (body["done"], body["total"]) == (5, 5)
    assert body["result"]["created"] == 5
    assert _count(as_tenant, org.id) == 5


def test_duplicate_requests_create_each_row_once(
    org, as_tenant, jobs, make_role, make_employees, make_certification
):
    role = make_role(org)
    people = make_employees(org, 4, role_id=role.id)
    cert = make_certification(org, role_ids=[role.id])
    with as_tenant(org.id) as s:
        for _ in range(3):  # the same change delivered three times, processed concurrently
            request_job(s, "fanout_certification", certification_id=cert.id)
            request_job(s, "fanout_employees", employee_ids=[p.id for p in people])
        s.commit()
    jobs.drain()
    assert _count(as_tenant, org.id) == 4
    assert _count(as_tenant, org.id, StatusEvent) == 0


def test_directory_changes_drive_employee_fanout(
    org, as_tenant, jobs, api, make_role, make_certification
):
    role = make_role(org)
    cert = make_certification(org, role_ids=[role.id])
    resp = api.post("/employees", json={"name": "Ann", "role_id": str(role.id)})
    assert resp.status_code == 201, resp.get_json()
    emp_id = resp.get_json()["id"]
    jobs.drain()
    rows = api.get(f"/assignments?subject_id={emp_id}").get_json()["items"]
    assert [(r["certification_id"], r["source"], r["status"]) for r in rows] == [
        (str(cert.id), "role", "missing")
    ]
    assert api.patch(f"/employees/{emp_id}", json={"role_id": None}).status_code == 200
    jobs.drain()
    assert api.get(f"/assignments?subject_id={emp_id}").get_json()["items"] == []
