"""`POST /assignments/bulk` (issue 14, point 9): assign, renew, revoke many subjects at once."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy import func, insert, select

from certifications.assignments.models import Assignment, AssignmentCycle, StatusEvent
from certifications.directory.models import Employee
from infra import database as db
from tests.support.queries import data_only

ISSUED = date(2026, 2, 2)  # the factories' record date


def _bulk(api, body, atomic=False):
    path = "/assignments/bulk" + ("?atomic=true" if atomic else "")
    return api.post(path, json=body)


def _statuses(report):
    return [row["status"] for row in report["rows"]]


def _audit(api, action):
    items = api.get("/audit-events?entity_type=assignment&limit=500").get_json()["items"]
    return [e for e in items if e["action"] == action]


def test_assign_reports_every_subject_and_writes_the_valid_ones(
    api, org, make_org, make_employee, make_certification, make_assignment
):
    cert = make_certification(org, name="Induction", validity_months=12)
    ana, bo, cy = (make_employee(org) for _ in range(3))
    gone = make_employee(org, active=False)
    held = make_employee(org)
    make_assignment(cert, held)
    stranger = make_employee(make_org())
    subjects = [ana.id, bo.id, ana.id, stranger.id, gone.id, held.id, cy.id]
    body = {
        "action": "assign",
        "certification_id": str(cert.id),
        "subject_type": "employee",
        "subject_ids": [str(s) for s in subjects],
        "issued_on": "2026-11-20",
        "notes": "Induction day",
    }
    # all or nothing first: refused rows, nothing written
    refused = _bulk(api, body, atomic=True)
    assert refused.status_code == 422, refused.get_json()
    assert api.get(f"/assignments?certification_id={cert.id}").get_json()["items"].__len__() == 1

    got = _bulk(api, body)
    assert got.status_code == 200, got.get_json()
    report = got.get_json()
    assert _statuses(report) == [
        "created",
        "created",
        "error",
        "error",
        "conflict",
        "conflict",
        "created",
    ]
    assert [row["index"] for row in report["rows"]] == list(range(7))
    assert report["counts"]["created"] == 3
    assert "Duplicate of subject 0" in report["rows"][2]["message"]
    assert "subject_id" in report["rows"][3]["errors"]
    listed = api.get(f"/assignments?certification_id={cert.id}").get_json()["items"]
    by_subject = {a["subject_id"]: a for a in listed}
    assert set(by_subject) == {str(ana.id), str(bo.id), str(cy.id), str(held.id)}
    mine = by_subject[str(ana.id)]
    assert (mine["issued_on"], mine["expires_on"], mine["status"]) == (
        "2026-11-20",
        "2027-11-20",
        "valid",
    )
    assert mine["notes"] == "Induction day"
    assert mine["id"] == report["rows"][0]["assignment_id"]
    (event,) = _audit(api, "bulk_assign")
    assert event["after"]["counts"]["created"] == 3
    assert sorted(event["after"]["assignment_ids"]) == sorted(
        r["assignment_id"] for r in report["rows"] if r["status"] == "created"
    )
    assert _audit(api, "create") == []  # one event for the request, not one per row


def test_renew_rules_same_dates_earlier_effective_and_order_of_dates(
    api, org, as_tenant, make_employee, make_certification, make_assignment
):
    cert = make_certification(org, name="Forklift", validity_months=12)
    people = [make_employee(org) for _ in range(3)]
    rows = [make_assignment(cert, p, expires_on=ISSUED + timedelta(days=365)) for p in people]
    later = make_employee(org)
    recent = make_assignment(cert, later, issued_on=date(2026, 11, 25))
    body = {
        "action": "renew",
        "certification_id": str(cert.id),
        "subject_type": "employee",
        "subject_ids": [str(p.id) for p in [*people, later]],
        "issued_on": "2026-11-20",
    }
    got = _bulk(api, body)
    assert got.status_code == 200, got.get_json()
    report = got.get_json()
    assert _statuses(report) == ["renewed", "renewed", "renewed", "conflict"]
    assert "2026-11-25" in report["rows"][3]["message"]
    assert "PATCH" in report["rows"][3]["message"]
    assert report["rows"][3]["errors"].keys() == {"effective_on"}
    one = api.get(f"/assignments/{rows[0].id}").get_json()
    assert (one["cycle"], one["issued_on"], one["expires_on"]) == (2, "2026-11-20", "2027-11-20")
    history = api.get(f"/assignments/{rows[0].id}/history").get_json()
    assert [c["cycle"] for c in history["cycles"]] == [1, 2]
    assert history["cycles"][0]["issued_on"] == ISSUED.isoformat()
    assert api.get(f"/assignments/{recent.id}").get_json()["cycle"] == 1

    # The same dates again: no new cycle.
    again = _bulk(api, body).get_json()
    assert _statuses(again)[:3] == ["unchanged"] * 3
    with as_tenant(org.id) as s:
        cycles = s.scalar(
            select(func.count())
            .select_from(AssignmentCycle)
            .where(AssignmentCycle.assignment_id == rows[0].id)
        )
    assert cycles == 1
    assert api.get(f"/assignments/{rows[0].id}").get_json()["cycle"] == 2

    bad = _bulk(api, body | {"effective_on": "2026-11-19"})
    assert bad.status_code == 422
    assert "effective_on" in str(bad.get_json())
    # issued_on defaults to today: an effective_on before it is refused as well
    undated = {k: v for k, v in body.items() if k != "issued_on"}
    bad = _bulk(api, undated | {"effective_on": "2000-01-01"})
    assert bad.status_code == 422
    assert "effective_on" in bad.get_json()["errors"]
    assert len(_audit(api, "bulk_renew")) == 1  # the request that changed nothing is not one


def test_revoke_needs_a_reason_and_a_live_assignment(
    api, org, make_employee, make_certification, make_assignment
):
    cert = make_certification(org)
    a, b = make_employee(org), make_employee(org)
    first = make_assignment(cert, a)
    body = {
        "action": "revoke",
        "certification_id": str(cert.id),
        "subject_type": "employee",
        "subject_ids": [str(a.id), str(b.id)],
    }
    assert _bulk(api, body).status_code == 422
    got = _bulk(api, body | {"reason": "Site closed"})
    assert got.status_code == 200, got.get_json()
    assert _statuses(got.get_json()) == ["revoked", "error"]
    one = api.get(f"/assignments/{first.id}").get_json()
    assert (one["status"], one["revoked_reason"]) == ("revoked", "Site closed")
    events = api.get(f"/assignments/{first.id}/history").get_json()["status_events"]
    assert [(e["from_status"], e["to_status"]) for e in events] == [("valid", "revoked")]
    again = _bulk(api, body | {"reason": "Site closed"}).get_json()
    assert _statuses(again) == ["error", "error"]


def test_refuses_foreign_certifications_and_bad_requests_without_writing(
    api, org, make_org, make_employee, make_certification, make_assignment
):
    other = make_org()
    theirs = make_certification(other)
    emp = make_employee(org)
    asset_cert = make_certification(org, type="asset")
    base = {"action": "assign", "subject_type": "employee", "subject_ids": [str(emp.id)]}
    got = _bulk(api, base | {"certification_id": str(theirs.id)})
    assert got.status_code == 422
    assert "certification_id" in got.get_json()["errors"]
    got = _bulk(api, base | {"certification_id": str(asset_cert.id)})
    assert got.status_code == 422
    assert "subject_type" in got.get_json()["errors"]
    cert = make_certification(org)
    for bad in (
        {"subject_ids": []},
        {"subject_ids": ["nope"]},
        {"subject_ids": [str(uuid.uuid4())] * 10_001},
        {"action": "delete"},
        {"issued_on": "2026-13-01"},
    ):
        assert _bulk(api, base | {"certification_id": str(cert.id)} | bad).status_code == 422, bad
    assert api.get(f"/assignments?subject_id={emp.id}").get_json()["items"] == []


def _members(as_tenant, org, cert, n):
    """`n` employees holding `cert` (Core inserts: arranging 10,000 rows quickly)."""
    now = db.utcnow()
    ids = [uuid.uuid4() for _ in range(n)]
    with as_tenant(org.id) as s:
        s.execute(
            insert(Employee.__table__),
            [
                {
                    "org_id": org.id,
                    "id": i,
                    "name": f"E{k:05d}",
                    "active": True,
                    "created_at": now,
                    "updated_at": now,
                }
                for k, i in enumerate(ids)
            ],
        )
        s.execute(
            insert(Assignment.__table__),
            [
                {
                    "org_id": org.id,
                    "id": uuid.uuid4(),
                    "certification_id": cert.id,
                    "subject_type": "employee",
                    "subject_id": i,
                    "source": "role",
                    "required": True,
                    "cycle": 1,
                    "issued_on": ISSUED,
                    "effective_on": ISSUED,
                    "expires_on": ISSUED + timedelta(days=365),
                    "expires_explicit": False,
                    "status": "valid",
                    "status_changed_at": now,
                    "created_at": now,
                    "updated_at": now,
                }
                for i in ids
            ],
        )
        s.commit()
    return ids


@pytest.mark.parametrize("action", ["renew", "revoke", "assign"])
def test_ten_thousand_subjects_in_one_request_cost_a_bounded_number_of_statements(
    action, api_for, make_org, as_tenant, make_certification, count_queries, backend
):
    costs = {}
    for n in (100, 10_000):
        org = make_org()
        api = api_for(org)
        cert = make_certification(org, name="Harness", validity_months=12)
        ids = _members(as_tenant, org, cert, n)
        if action == "assign":
            cert = make_certification(org, name="Second", validity_months=12)
        body = {
            "action": action,
            "certification_id": str(cert.id),
            "subject_type": "employee",
            "subject_ids": [str(i) for i in ids],
            "issued_on": "2026-11-20",
            "reason": "Site closed",
        }
        with count_queries(where=data_only) as q:
            got = _bulk(api, body)
        assert got.status_code == 200, got.get_json()
        expected = {"renew": "renewed", "revoke": "revoked", "assign": "created"}[action]
        assert got.get_json()["counts"][expected] == n
        costs[n] = len(q)
        with as_tenant(org.id) as s:
            events = s.scalar(select(func.count()).select_from(StatusEvent))
        assert events == (0 if action == "assign" else n)
    # SQLite takes ids 5,000 per IN list: at most 2 more statements per write for 10,000.
    if backend.is_postgres:  # every id list is one array parameter
        assert costs[10_000] == costs[100], costs
    assert costs[10_000] <= costs[100] + 12, costs
    assert costs[10_000] <= 40, costs


def test_bulk_assign_also_needs_the_create_scope(
    api_for, org, make_employee, make_certification, make_assignment
):
    cert = make_certification(org)
    emp = make_employee(org)
    updater = api_for(org, scopes=["certifications:read", "certifications:update"])
    body = {
        "action": "assign",
        "certification_id": str(cert.id),
        "subject_type": "employee",
        "subject_ids": [str(emp.id)],
    }
    got = _bulk(updater, body)
    assert got.status_code == 403
    assert "certifications:create" in got.get_json()["message"]
    make_assignment(cert, emp)
    assert _bulk(updater, body | {"action": "renew"}).status_code == 200
