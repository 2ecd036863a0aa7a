"""Role fan-out: set-based creation, valid_when_added, removals, idempotency, tenancy."""

from __future__ import annotations

import threading
import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, text, update

from certifications.assignments import fanout
from certifications.assignments.models import Assignment, StatusEvent
from certifications.directory.models import Employee
from infra import context
from infra import database as db
from infra.database import utcnow
from jobs.models import Job
from tests.support import factories
from workers import actors

TODAY = date(2026, 3, 31)


def _run_cert(org_id, cert_id, today=TODAY):
    with context.tenant(org_id), db.new_session() as s:
        report = fanout.fanout_certification(s, org_id, cert_id, today=today, now=utcnow())
        s.commit()
    return report


def _run_emps(org_id, ids, today=TODAY):
    with context.tenant(org_id), db.new_session() as s:
        report = fanout.fanout_employees(s, org_id, ids, today=today, now=utcnow())
        s.commit()
    return report


def _assignments(as_tenant, org_id, **where):
    with as_tenant(org_id) as s:
        stmt = select(Assignment).filter_by(**where).order_by(Assignment.subject_id)
        return list(s.scalars(stmt))


def _events(as_tenant, org_id):
    with as_tenant(org_id) as s:
        return s.scalar(select(func.count()).select_from(StatusEvent))


def _set_employee(as_tenant, org_id, emp_id, **values):
    with as_tenant(org_id) as s:
        s.execute(update(Employee).where(Employee.id == emp_id).values(**values))
        s.commit()


def test_creates_missing_role_assignments_in_one_insert(
    org, as_tenant, count_queries, make_role, make_employee, make_employees, make_certification
):
    role, other_role = make_role(org), make_role(org)
    members = make_employees(org, 4, role_id=role.id)
    make_employees(org, 2, role_id=other_role.id)
    inactive = make_employee(org, role_id=role.id)
    _set_employee(as_tenant, org.id, inactive.id, active=False)
    cert = make_certification(org, role_ids=[role.id])
    with count_queries() as q:
        report = _run_cert(org.id, cert.id)
    inserts = q.starting("INSERT INTO assignments")
    assert len(inserts) == 1, q
    assert "ON CONFLICT" in inserts[0].upper()
    assert report["created"] == 4
    rows = _assignments(as_tenant, org.id, certification_id=cert.id)
    assert sorted(r.subject_id for r in rows) == sorted(m.id for m in members)
    assert {(r.source, r.status, r.required, r.issued_on, r.cycle) for r in rows} == {
        ("role", "missing", True, None, 1)
    }
    assert _events(as_tenant, org.id) == 0  # the first status lives on the row


def test_rerun_changes_nothing(org, as_tenant, make_role, make_employees, make_certification):
    role = make_role(org)
    make_employees(org, 3, role_id=role.id)
    cert = make_certification(org, role_ids=[role.id])
    _run_cert(org.id, cert.id)
    before = [(a.id, a.status, a.updated_at) for a in _assignments(as_tenant, org.id)]
    report = _run_cert(org.id, cert.id)
    assert report == {"created": 0, "removed": 0, "not_required": 0, "required_again": 0}
    assert [(a.id, a.status, a.updated_at) for a in _assignments(as_tenant, org.id)] == before
    assert _events(as_tenant, org.id) == 0


@pytest.mark.parametrize(
    ("fields", "issued", "expires", "status"),
    [
        ({"validity_months": 1}, TODAY, date(2026, 4, 30), "expires_soon"),
        ({"validity_months": 12}, TODAY, date(2027, 3, 31), "valid"),
        ({"validity_days": None}, TODAY, None, "valid"),
        ({"validity_months": 12, "forms_required": True}, TODAY, date(2027, 3, 31), "missing"),
    ],
)
def test_valid_when_added_in_the_same_statement(
    org, as_tenant, fields, issued, expires, status, make_role, make_employees, make_certification
):
    role = make_role(org)
    make_employees(org, 2, role_id=role.id)
    cert = make_certification(org, role_ids=[role.id], valid_when_added=True, **fields)
    _run_cert(org.id, cert.id)
    rows = _assignments(as_tenant, org.id)
    assert {(r.issued_on, r.effective_on, r.expires_on, r.status) for r in rows} == {
        (issued, issued, expires, status)
    }


def test_employees_fanout_applies_each_certifications_rules(
    org, as_tenant, count_queries, make_role, make_employee, make_certification
):
    role = make_role(org)
    plain = make_certification(org, role_ids=[role.id])
    instant = make_certification(org, role_ids=[role.id], valid_when_added=True, validity_days=10)
    make_certification(org, role_ids=[role.id], type="employee", archived_at=utcnow())
    person = make_employee(org, role_id=role.id)
    with count_queries() as q:
        report = _run_emps(org.id, [person.id])
    assert len(q.starting("INSERT INTO assignments")) == 1, q
    assert report["created"] == 2
    by_cert = {a.certification_id: a for a in _assignments(as_tenant, org.id)}
    assert set(by_cert) == {plain.id, instant.id}
    assert by_cert[plain.id].status == "missing"
    assert by_cert[instant.id].status == "expires_soon"
    assert by_cert[instant.id].expires_on == TODAY + timedelta(days=10)


def test_leaving_the_role_removes_unrecorded_and_unrequires_recorded(
    org, as_tenant, make_role, make_employees, make_certification
):
    role, other = make_role(org), make_role(org)
    cert = make_certification(org, role_ids=[role.id])
    recorded, unrecorded = make_employees(org, 2, role_id=role.id)
    _run_cert(org.id, cert.id)
    with as_tenant(org.id) as s:
        s.execute(
            update(Assignment)
            .where(Assignment.subject_id == recorded.id)
            .values(issued_on=TODAY, status="valid")
        )
        s.commit()
    for person in (recorded, unrecorded):
        _set_employee(as_tenant, org.id, person.id, role_id=other.id)
    report = _run_emps(org.id, [recorded.id, unrecorded.id])
    assert report == {"created": 0, "removed": 1, "not_required": 1, "required_again": 0}
    rows = _assignments(as_tenant, org.id)
    assert [(r.subject_id, r.required, r.status) for r in rows] == [(recorded.id, False, "valid")]
    # Back in the role: the recorded one counts again, the removed one comes back missing.
    for person in (recorded, unrecorded):
        _set_employee(as_tenant, org.id, person.id, role_id=role.id)
    report = _run_emps(org.id, [recorded.id, unrecorded.id])
    assert report == {"created": 1, "removed": 0, "not_required": 0, "required_again": 1}
    assert [r.required for r in _assignments(as_tenant, org.id)] == [True, True]


def test_deactivated_employee_loses_unrecorded(
    org, as_tenant, make_role, make_employee, make_certification
):
    role = make_role(org)
    cert = make_certification(org, role_ids=[role.id])
    person = make_employee(org, role_id=role.id)
    _run_cert(org.id, cert.id)
    _set_employee(as_tenant, org.id, person.id, active=False)
    assert _run_emps(org.id, [person.id])["removed"] == 1
    assert _assignments(as_tenant, org.id) == []


def test_role_removed_from_certification(
    org, as_tenant, make_role, make_employees, make_certification
):
    from certifications.catalog.models import CertificationRole

    role = make_role(org)
    cert = make_certification(org, role_ids=[role.id])
    make_employees(org, 3, role_id=role.id)
    _run_cert(org.id, cert.id)
    with as_tenant(org.id) as s:
        s.execute(CertificationRole.__table__.delete().where(CertificationRole.org_id == org.id))
        s.commit()
    assert _run_cert(org.id, cert.id)["removed"] == 3


def test_manual_and_revoked_assignments_are_respected(
    org, as_tenant, api, make_role, make_employees, make_certification, make_certification_role
):
    role = make_role(org)
    cert = make_certification(org)
    manual, revoked = make_employees(org, 2, role_id=role.id)
    for person in (manual, revoked):
        body = {"certification_id": str(cert.id), "subject_type": "employee"}
        resp = api.post("/assignments", json={**body, "subject_id": str(person.id)})
        assert resp.status_code == 201
    api.post(f"/assignments/{resp.get_json()['id']}/revoke", json={"reason": "misconduct"})
    make_certification_role(org, cert, role)
    assert _run_cert(org.id, cert.id)["created"] == 0
    rows = _assignments(as_tenant, org.id)
    assert sorted((r.source, r.status) for r in rows) == [
        ("manual", "missing"),
        ("manual", "revoked"),
    ]


def test_other_organizations_untouched(
    make_org, as_tenant, make_role, make_employees, make_certification
):
    a, b = make_org(), make_org()
    certs = {}
    for org in (a, b):
        role = make_role(org)
        make_employees(org, 2, role_id=role.id)
        certs[org.id] = make_certification(org, role_ids=[role.id])
    _run_cert(a.id, certs[a.id].id)
    _run_cert(a.id, certs[b.id].id)  # another org's certification id: invisible, no effect
    assert len(_assignments(as_tenant, a.id)) == 2
    assert _assignments(as_tenant, b.id) == []


def test_job_progress(org, as_tenant, make_role, make_employees, make_certification):
    role = make_role(org)
    make_employees(org, 3, role_id=role.id)
    cert = make_certification(org, role_ids=[role.id])
    with as_tenant(org.id) as s:
        job = Job(kind="role_fanout")
        s.add(job)
        s.commit()
    actors.fanout_certification(str(org.id), str(cert.id), str(job.id))
    with as_tenant(org.id) as s:
        done = s.get(Job, job.id)
    assert (done.state, done.done, done.total) == ("done", 3, 3)
    assert done.result["created"] == 3
    assert done.started_at is not None
    assert done.finished_at is not None


def test_failed_job_is_recorded(org, as_tenant, monkeypatch):
    with as_tenant(org.id) as s:
        job = Job(kind="role_fanout")
        s.add(job)
        s.commit()

    def boom(*_a, **_k):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(fanout, "fanout_certification", boom)
    with pytest.raises(RuntimeError):
        actors.fanout_certification(str(org.id), str(uuid.uuid4()), str(job.id))
    with as_tenant(org.id) as s:
        failed = s.get(Job, job.id)
    assert failed.state == "failed"
    assert "database on fire" in failed.error


@pytest.mark.postgres
def test_two_workers_at_once_create_each_row_once(
    org, as_tenant, make_role, make_employees, make_certification
):
    role = make_role(org)
    make_employees(org, 300, role_id=role.id)
    cert = make_certification(org, role_ids=[role.id])
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with context.tenant(org.id), db.new_session() as s:
                barrier.wait()
                fanout.fanout_certification(s, org.id, cert.id, today=TODAY, now=utcnow())
                s.commit()
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(_assignments(as_tenant, org.id)) == 300


def test_employee_job_commits_batch_by_batch(
    org, as_tenant, monkeypatch, make_role, make_employees, make_certification
):
    monkeypatch.setattr(fanout, "EMPLOYEE_CHUNK", 2)
    role = make_role(org)
    make_certification(org, role_ids=[role.id])
    people = make_employees(org, 5, role_id=role.id)
    with as_tenant(org.id) as s:
        job = Job(kind="role_fanout", total=5)
        s.add(job)
        s.commit()
    seen: list[int] = []
    real = fanout.fanout_employees

    def spy(session, org_id, ids, **kw):
        with as_tenant(org.id) as other:  # what a polling client sees, from outside
            seen.append(other.get(Job, job.id).done)
        return real(session, org_id, ids, **kw)

    monkeypatch.setattr(fanout, "fanout_employees", spy)
    actors.fanout_employees(str(org.id), [str(p.id) for p in people], str(job.id))
    with as_tenant(org.id) as s:
        assert s.get(Job, job.id).result["created"] == 5
    assert seen == [0, 2, 4]
    with as_tenant(org.id) as s:
        done = s.get(Job, job.id)
    assert (done.state, done.done, done.total) == ("done", 5, 5)


def _required_role_holders(as_tenant, org_id):
    return {
        a.subject_id
        for a in _assignments(as_tenant, org_id, source="role", required=True, revoked_at=None)
    }


@pytest.mark.postgres
def test_an_employee_fanout_waits_for_a_running_certification_fanout(org, as_tenant):
    """A move committed while a certification fan-out is writing (after it read the members):
    the mover's own fan-out waits for that one to commit, then retires the row it wrote. (A
    deactivation itself waits for the org's transactions counting assignments, migration
    0021, so the leaver's is committed by the second transaction, then its fan-out runs.)"""
    role, other = factories.create_role(org.id), factories.create_role(org.id)
    people = factories.create_employees(org.id, 3, role_id=role.id)
    cert = factories.create_certification(org.id, role_ids=[role.id])
    mover, leaver = people[0].id, people[1].id
    done: list[dict[str, int]] = []

    def leave_then_fanout() -> None:
        _set_employee(as_tenant, org.id, leaver, active=False)
        done.append(_run_emps(org.id, [mover, leaver]))

    with context.tenant(org.id), db.new_session() as first:
        fanout.fanout_certification(first, org.id, cert.id, today=TODAY, now=utcnow())
        _set_employee(as_tenant, org.id, mover, role_id=other.id)
        second = threading.Thread(target=leave_then_fanout)
        second.start()
        second.join(timeout=1.0)
        waited = second.is_alive()
        first.commit()
    second.join(timeout=30)
    assert _required_role_holders(as_tenant, org.id) == {people[2].id}
    assert done == [{"created": 0, "removed": 2, "not_required": 0, "required_again": 0}]
    assert waited


@pytest.mark.postgres
def test_fanouts_of_other_organizations_do_not_wait(org, make_org, as_tenant):
    other = make_org()
    mine, theirs = factories.create_role(org.id), factories.create_role(other.id)
    factories.create_employees(org.id, 2, role_id=mine.id)
    factories.create_certification(org.id, role_ids=[mine.id])
    their_people = factories.create_employees(other.id, 2, role_id=theirs.id)
    factories.create_certification(other.id, role_ids=[theirs.id])
    done: list[dict[str, int]] = []
    with context.tenant(org.id), db.new_session() as first:
        fanout.fanout_employees(first, org.id, [], today=TODAY, now=utcnow())  # holds org's lock
        t = threading.Thread(
            target=lambda: done.append(_run_emps(other.id, [p.id for p in their_people]))
        )
        t.start()
        t.join(timeout=30)
        assert [d["created"] for d in done] == [2]
        first.rollback()


@pytest.mark.postgres
def test_the_fanout_lock_wait_leaves_the_statement_timeout_as_it_was(org):
    with context.tenant(org.id), db.new_session() as s:
        before = s.execute(text("SELECT current_setting('statement_timeout')")).scalar_one()
        fanout.lock_fanouts(s, org.id)
        after = s.execute(text("SELECT current_setting('statement_timeout')")).scalar_one()
        s.rollback()
    assert after == before != "0"
