"""Compliance as of a past day (`on=`): the summary and the subject views read history.

History is written by the services and the fan-out with pinned clocks (`now`), as it would
have been on those days; the figures are then read through the API.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

import pytest

from certifications.assignments import exemptions, fanout, service
from certifications.directory.models import Employee
from tests.api.test_views import counts

ACTOR = "tester"


def at(day: date) -> datetime:
    """Noon UTC of `day`: the pinned clock of a change made that day."""
    return datetime.combine(day, time(12), UTC)


def cert_figures(api: Any, cert_id: Any, on: date) -> dict[str, Any]:
    resp = api.get(f"/compliance/summary?on={on.isoformat()}")
    assert resp.status_code == 200, resp.get_json()
    (item,) = [
        c for c in resp.get_json()["certifications"] if c["certification_id"] == str(cert_id)
    ]
    return item


def view_statuses(api: Any, on: date, **query: str) -> dict[str, list[str]]:
    """Employee name → statuses of their listed certifications, as of `on`."""
    params = "&".join(f"{k}={v}" for k, v in {"on": on.isoformat(), **query}.items())
    resp = api.get(f"/views/employees?{params}")
    assert resp.status_code == 200, resp.get_json()
    return {
        item["name"]: [c["status"] for c in item["certifications"]]
        for item in resp.get_json()["items"]
    }


def assign(as_tenant: Any, org: Any, cert: Any, subject: Any, day: date, **dates: Any) -> Any:
    with as_tenant(org.id) as s:
        data = {
            "certification_id": cert.id,
            "subject_type": cert.type,
            "subject_id": subject.id,
            **dates,
        }
        a = service.create_assignment(s, data, actor=ACTOR, now=at(day))
        s.commit()
        return a


def test_valid_on_1_march_expired_on_1_april(
    api, org, make_certification, make_employee, as_tenant
):
    cert = make_certification(org, warning_days=7)
    worker = make_employee(org, name="Worker")
    assign(
        as_tenant,
        org,
        cert,
        worker,
        date(2026, 2, 1),
        issued_on=date(2025, 3, 20),
        expires_on=date(2026, 3, 20),
    )
    march = cert_figures(api, cert.id, date(2026, 3, 1))
    assert march["counts"] == counts(valid=1)
    assert (march["required"], march["compliant"]) == (1, 1)
    april = cert_figures(api, cert.id, date(2026, 4, 1))
    assert april["counts"] == counts(expired=1)
    assert (april["required"], april["compliant"], april["compliance"]) == (1, 0, 0.0)
    # Before it was recorded (1 February) the assignment did not exist yet.
    assert cert_figures(api, cert.id, date(2026, 1, 15))["counts"] == counts()
    assert view_statuses(api, date(2026, 3, 1))["Worker"] == ["valid"]
    assert view_statuses(api, date(2026, 3, 14))["Worker"] == ["expires_soon"]
    assert view_statuses(api, date(2026, 4, 1))["Worker"] == ["expired"]
    assert view_statuses(api, date(2026, 4, 1), status="valid") == {}


def test_joined_a_role_on_15_march_was_not_required_on_1_march(
    api, org, make_role, make_certification, make_employee, as_tenant
):
    role = make_role(org)
    cert = make_certification(org, role_ids=[role.id])
    emp = make_employee(org, name="Joiner")

    def move(role_id: Any, day: date) -> None:
        with as_tenant(org.id) as s:
            s.get(Employee, emp.id).role_id = role_id
            s.flush()
            fanout.fanout_employees(s, org.id, [emp.id], today=day, now=at(day))
            s.commit()

    move(role.id, date(2026, 3, 15))
    march_1 = cert_figures(api, cert.id, date(2026, 3, 1))
    assert (march_1["counts"], march_1["required"]) == (counts(), 0)
    assert view_statuses(api, date(2026, 3, 1))["Joiner"] == []
    march_20 = cert_figures(api, cert.id, date(2026, 3, 20))
    assert (march_20["counts"], march_20["required"]) == (counts(missing=1), 1)
    # Leaving the role deletes the unrecorded assignment: its required days stay history.
    move(None, date(2026, 6, 1))
    may = cert_figures(api, cert.id, date(2026, 5, 1))
    assert (may["counts"], may["required"]) == (counts(missing=1), 1)
    june = cert_figures(api, cert.id, date(2026, 6, 2))
    assert (june["counts"], june["required"]) == (counts(), 0)


def test_renewal_revocation_and_reassignment_as_they_stood(
    api, org, make_certification, make_employee, as_tenant
):
    cert = make_certification(org, warning_days=0)
    emp = make_employee(org, name="Renewer")
    a = assign(
        as_tenant,
        org,
        cert,
        emp,
        date(2026, 1, 5),
        issued_on=date(2025, 3, 20),
        expires_on=date(2026, 3, 20),
    )
    with as_tenant(org.id) as s:
        renew = {"issued_on": date(2026, 4, 10), "expires_on": date(2027, 4, 10)}
        service.renew_assignment(
            s, s.get(type(a), a.id), renew, actor=ACTOR, now=at(date(2026, 4, 10))
        )
        s.commit()
    # The old cycle was current until the renewal was recorded.
    assert view_statuses(api, date(2026, 4, 1))["Renewer"] == ["expired"]
    assert view_statuses(api, date(2026, 4, 10))["Renewer"] == ["valid"]
    with as_tenant(org.id) as s:
        service.revoke_assignment(
            s, s.get(type(a), a.id), "fraud", actor=ACTOR, now=at(date(2026, 5, 1))
        )
        s.commit()
    assert view_statuses(api, date(2026, 4, 30))["Renewer"] == ["valid"]
    assert view_statuses(api, date(2026, 5, 2))["Renewer"] == ["revoked"]
    assign(as_tenant, org, cert, emp, date(2026, 6, 1), issued_on=date(2026, 6, 1))
    # From the reassignment on, the revoked one is history: one row, not two.
    assert view_statuses(api, date(2026, 5, 31))["Renewer"] == ["revoked"]
    assert view_statuses(api, date(2026, 6, 2))["Renewer"] == ["valid"]
    assert cert_figures(api, cert.id, date(2026, 6, 2))["counts"] == counts(valid=1)


def test_exemptions_as_they_stood(api, org, make_certification, make_employee, as_tenant):
    cert = make_certification(org)
    emp = make_employee(org, name="Exempt")
    a = assign(as_tenant, org, cert, emp, date(2026, 1, 5))
    with as_tenant(org.id) as s:
        exemptions.exempt(
            s, s.get(type(a), a.id), "on leave", None, actor=ACTOR, now=at(date(2026, 4, 1))
        )
        s.commit()
    with as_tenant(org.id) as s:
        exemptions.lift(s, s.get(type(a), a.id), now=at(date(2026, 5, 1)))
        s.commit()
    before, during, after = (cert_figures(api, cert.id, date(2026, m, 15)) for m in (3, 4, 5))
    assert (before["exempt"], before["counts"], before["required"]) == (0, counts(missing=1), 1)
    assert (during["exempt"], during["counts"], during["required"]) == (1, counts(), 0)
    assert (after["exempt"], after["counts"]) == (0, counts(missing=1))
    resp = api.get("/views/employees?on=2026-04-15&exempt=true")
    assert [i["name"] for i in resp.get_json()["items"]] == ["Exempt"]


def test_other_orgs_history_never_counts(
    api, org, make_org, make_certification, make_employee, as_tenant
):
    other = make_org()
    theirs = make_certification(other)
    assign(as_tenant, other, theirs, make_employee(other), date(2026, 2, 1))
    body = api.get("/compliance/summary?on=2026-03-01").get_json()
    assert body["certifications"] == []
    assert body["totals"]["counts"] == counts()
    assert api.get("/views/employees?on=2026-03-01").get_json()["items"] == []


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/compliance/summary?on=2999-01-01", "on"),
        ("/compliance/summary?on=2026-13-01", "on"),
        ("/views/employees?on=2999-01-01", "on"),
        ("/views/employees?on=2026-03-01&format=csv", "on"),
        ("/views/groups?on=20260301", "on"),
    ],
)
def test_bad_days_are_422_naming_on(api, path, field):
    resp = api.get(path)
    assert resp.status_code == 422, resp.get_json()
    assert field in str(resp.get_json()["errors"])
