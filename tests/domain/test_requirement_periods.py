"""Requirement history's writers: open periods on the assignment rows, closed ones as rows.

A fan-out writes its assignments once (the open period is two columns of the row); a period
becomes a `requirement_periods` row only when it closes: the row is deleted, stops counting
(superseded), or changes `required`.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select, update

from certifications.assignments import fanout, service
from certifications.assignments.models import Assignment
from certifications.directory.models import Employee
from certifications.history.models import RequirementPeriod
from certifications.history.periods import close_requirements, record_requirements

DAY1 = date(2026, 3, 2)
DAY2 = date(2026, 3, 20)


def at(day: date) -> datetime:
    return datetime.combine(day, time(12), UTC)


def _fanout_cert(as_tenant, org_id, cert_id, day):
    with as_tenant(org_id) as s:
        report = fanout.fanout_certification(s, org_id, cert_id, today=day, now=at(day))
        s.commit()
    return report


def _fanout_emps(as_tenant, org_id, ids, day):
    with as_tenant(org_id) as s:
        report = fanout.fanout_employees(s, org_id, ids, today=day, now=at(day))
        s.commit()
    return report


def _move(as_tenant, org_id, emp_ids, role_id):
    with as_tenant(org_id) as s:
        s.execute(update(Employee).where(Employee.id.in_(emp_ids)).values(role_id=role_id))
        s.commit()


def _periods(as_tenant, org_id):
    p = RequirementPeriod
    with as_tenant(org_id) as s:
        rows = s.execute(
            select(p.assignment_id, p.required, p.starts_on, p.ends_on).order_by(
                p.assignment_id, p.starts_on
            )
        )
        return [tuple(r) for r in rows]


def _open(as_tenant, org_id):
    """assignment id → (counted_since, counted_required, updated_at)."""
    a = Assignment
    with as_tenant(org_id) as s:
        rows = s.execute(select(a.id, a.counted_since, a.counted_required, a.updated_at))
        return {r[0]: (r[1], r[2], r[3]) for r in rows}


def test_a_fanout_writes_no_period_rows_and_its_rows_count_from_today(
    org, as_tenant, make_role, make_employees, make_certification
):
    role = make_role(org)
    make_employees(org, 30, role_id=role.id)
    cert = make_certification(org, role_ids=[role.id])
    assert _fanout_cert(as_tenant, org.id, cert.id, DAY1)["created"] == 30
    assert _periods(as_tenant, org.id) == []
    rows = _open(as_tenant, org.id)
    assert {(since, required) for since, required, _ in rows.values()} == {(DAY1, True)}
    # Idempotent: a second pass the next day opens, closes and rewrites nothing.
    with as_tenant(org.id) as s:
        assert record_requirements(s, org.id, DAY2, certification_ids=[cert.id]) == 0
        s.commit()
    assert _open(as_tenant, org.id) == rows
    assert _periods(as_tenant, org.id) == []


def test_leaving_the_role_closes_the_deleted_rows_periods(
    org, as_tenant, make_role, make_employees, make_certification
):
    role = make_role(org)
    people = make_employees(org, 3, role_id=role.id)
    cert = make_certification(org, role_ids=[role.id])
    _fanout_cert(as_tenant, org.id, cert.id, DAY1)
    ids = sorted(_open(as_tenant, org.id))
    _move(as_tenant, org.id, [p.id for p in people], None)
    report = _fanout_emps(as_tenant, org.id, [p.id for p in people], DAY2)
    assert report["removed"] == 3
    assert _open(as_tenant, org.id) == {}
    assert _periods(as_tenant, org.id) == [(i, True, DAY1, DAY2) for i in ids]


def test_a_row_added_and_removed_the_same_day_leaves_no_period(
    org, as_tenant, make_role, make_employee, make_certification
):
    role = make_role(org)
    emp = make_employee(org, role_id=role.id)
    cert = make_certification(org, role_ids=[role.id])
    _fanout_cert(as_tenant, org.id, cert.id, DAY1)
    _move(as_tenant, org.id, [emp.id], None)
    assert _fanout_emps(as_tenant, org.id, [emp.id], DAY1)["removed"] == 1
    assert _periods(as_tenant, org.id) == []


def test_no_longer_required_closes_a_required_period_and_counts_as_not_required(
    org, as_tenant, make_role, make_employee, make_certification
):
    role = make_role(org)
    emp = make_employee(org, role_id=role.id)
    cert = make_certification(org, role_ids=[role.id], valid_when_added=True)
    _fanout_cert(as_tenant, org.id, cert.id, DAY1)  # recorded: kept when no longer required
    (assignment_id,) = _open(as_tenant, org.id)
    _move(as_tenant, org.id, [emp.id], None)
    assert _fanout_emps(as_tenant, org.id, [emp.id], DAY2)["not_required"] == 1
    assert _periods(as_tenant, org.id) == [(assignment_id, True, DAY1, DAY2)]
    since, required, _ = _open(as_tenant, org.id)[assignment_id]
    assert (since, required) == (DAY2, False)
    # Back in the role a week later: the not-required days close, required again from then.
    later = DAY2 + timedelta(days=7)
    _move(as_tenant, org.id, [emp.id], role.id)
    assert _fanout_emps(as_tenant, org.id, [emp.id], later)["required_again"] == 1
    assert _periods(as_tenant, org.id) == [
        (assignment_id, True, DAY1, DAY2),
        (assignment_id, False, DAY2, later),
    ]
    assert _open(as_tenant, org.id)[assignment_id][:2] == (later, True)


def test_a_superseded_revoked_row_stops_counting_without_changing_for_readers(
    org, as_tenant, make_certification, make_employee
):
    """Reassigning after a revocation closes the revoked row's period; the row's `updated_at`
    stays (an `updated_since` listing would otherwise report a row no user changed)."""
    cert = make_certification(org)
    emp = make_employee(org)
    data = {"certification_id": cert.id, "subject_type": "employee", "subject_id": emp.id}
    with as_tenant(org.id) as s:
        old = service.create_assignment(s, dict(data), actor="t", now=at(DAY1))
        s.commit()
    with as_tenant(org.id) as s:
        service.revoke_assignment(s, s.get(Assignment, old.id), "r", actor="t", now=at(DAY1))
        s.commit()
    before = _open(as_tenant, org.id)[old.id]
    assert before[:2] == (DAY1, True)  # a revoked row counts until another is assigned
    with as_tenant(org.id) as s:
        new = service.create_assignment(s, dict(data), actor="t", now=at(DAY2))
        s.commit()
    rows = _open(as_tenant, org.id)
    assert rows[old.id] == (None, None, before[2])
    assert rows[new.id][:2] == (DAY2, True)
    assert _periods(as_tenant, org.id) == [(old.id, True, DAY1, DAY2)]


def test_a_period_row_left_open_before_the_change_is_closed_with_its_row(
    org, as_tenant, make_certification
):
    """Open period rows written before migration 0024 still close when their assignment is
    deleted; a deleted row that carried its own open period gets it written closed."""
    cert = make_certification(org)
    legacy, moved = uuid.uuid4(), uuid.uuid4()
    with as_tenant(org.id) as s:
        s.add(
            RequirementPeriod(
                assignment_id=legacy,
                certification_id=cert.id,
                subject_type="employee",
                subject_id=uuid.uuid4(),
                required=True,
                starts_on=DAY1,
            )
        )
        s.flush()
        removed = [
            SimpleNamespace(id=legacy, counted_since=None),
            SimpleNamespace(
                org_id=org.id,
                id=moved,
                certification_id=cert.id,
                subject_type="employee",
                subject_id=uuid.uuid4(),
                counted_since=DAY1,
                counted_required=False,
            ),
        ]
        close_requirements(s, DAY2, removed)
        s.commit()
    assert sorted(_periods(as_tenant, org.id)) == sorted(
        [(legacy, True, DAY1, DAY2), (moved, False, DAY1, DAY2)]
    )


@pytest.mark.postgres
def test_two_transactions_closing_the_same_period_write_it_once(
    org, as_tenant, make_role, make_employee, make_certification
):
    """Closing a period reads the row and inserts the closed period, then moves the row on: a
    read-modify-write. Without a lock, a second transaction read the row as it was before the
    first committed and closed the same period again (two history rows for one span)."""
    role = make_role(org)
    make_employee(org, role_id=role.id)
    cert = make_certification(org, role_ids=[role.id])
    _fanout_cert(as_tenant, org.id, cert.id, DAY1)
    (assignment_id,) = _open(as_tenant, org.id)
    with as_tenant(org.id) as s:
        s.execute(update(Assignment).values(required=False))
        s.commit()
    first_done = threading.Event()
    errors: list[BaseException] = []

    def close(wait_for_first: bool) -> None:
        try:
            with as_tenant(org.id) as s:
                if wait_for_first:
                    first_done.wait(10)
                record_requirements(s, org.id, DAY2, certification_ids=[cert.id])
                if not wait_for_first:
                    first_done.set()
                    threading.Event().wait(
                        0.5
                    )  # the second transaction runs while this one is open
                s.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=close, args=(w,)) for w in (False, True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert _periods(as_tenant, org.id) == [(assignment_id, True, DAY1, DAY2)]
    assert _open(as_tenant, org.id)[assignment_id][:2] == (DAY2, False)
