"""The gate check and the site/client members views (issues 15 and 20) count equivalences as
assignments do (`satisfied_by`, `satisfied_via`), and answer a past `on=` from history.

History is written by the services and the fan-out with pinned clocks, as it would have been on
those days (as tests/api/test_compliance_history.py does); the answers are read over HTTP.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest

from certifications.assignments import exemptions, fanout, service
from certifications.assignments.models import Assignment
from certifications.catalog.models import CertificationEquivalence, CertificationLocation
from certifications.directory.models import Employee, Membership
from certifications.history.asof import AsOf
from certifications.reporting.gate import gate_check
from infra.database import utcnow
from tenancy.organizations import org_today
from tests.support.queries import data_only

ACTOR = "tester"
MARCH_1, APRIL_1 = date(2026, 3, 1), date(2026, 4, 1)


@pytest.fixture
def today() -> date:
    return org_today("UTC", utcnow())


def at(day: date) -> datetime:
    """Noon UTC of `day`: the pinned clock of a change made that day."""
    return datetime.combine(day, time(12), UTC)


def _post(api: Any, path: str, body: dict[str, Any], status: int = 201) -> Any:
    resp = api.post(path, json=body)
    assert resp.status_code == status, resp.get_json()
    return resp.get_json()


def gate(api: Any, **query: Any) -> dict[str, Any]:
    params = "&".join(f"{k}={v}" for k, v in query.items())
    resp = api.get(f"/compliance/check?{params}")
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def statuses(check: dict[str, Any]) -> dict[str, str]:
    return {r["certification_id"]: r["status"] for r in check["requirements"]}


def members(api: Any, site: Any, **query: Any) -> dict[str, dict[str, Any]]:
    """Member name → {certification id → entry} of the site's members view."""
    params = "&".join(f"{k}={v}" for k, v in query.items())
    resp = api.get(f"/views/locations/{site}/members?{params}")
    assert resp.status_code == 200, resp.get_json()
    return {
        m["name"]: {e["certification_id"]: e for e in m["certifications"]}
        for m in resp.get_json()["items"]
    }


# --- equivalences, today and ahead --------------------------------------------------------------


def test_gate_and_members_view_count_an_equivalent_record(api, jobs, today):
    site = _post(api, "/locations", {"name": "Tower 2"})["id"]
    body = {"type": "employee", "validity": {"months": 12}}
    osha30 = _post(api, "/certifications", {"name": "OSHA 30", **body})["id"]
    osha10 = _post(
        api,
        "/certifications",
        {"name": "OSHA 10", "satisfied_by": [osha30], "location_ids": [site], **body},
    )["id"]
    ada = _post(api, "/employees", {"name": "Ada"})["id"]
    gus = _post(api, "/employees", {"name": "Gus"})["id"]  # a visitor, off the roster
    _post(api, f"/locations/{site}/members", {"employee_id": ada})
    jobs.drain()
    expires = today + timedelta(days=60)
    thirty = {}
    for emp in (ada, gus):
        record = {
            "certification_id": osha30,
            "subject_type": "employee",
            "subject_id": emp,
            "issued_on": (today - timedelta(days=10)).isoformat(),
            "expires_on": expires.isoformat(),
        }
        thirty[emp] = _post(api, "/assignments", record)["id"]
    jobs.drain()
    [ten] = api.get(f"/assignments?subject_id={ada}&certification_id={osha10}").get_json()["items"]
    assert ten["status"] == "valid"  # the stored status follows OSHA 30 (assignments' rule)

    for emp in (ada, gus):
        check = gate(api, employee_id=emp, location_id=site)
        assert check["allowed"] is True, check
        [req] = check["requirements"]
        assert req["certification_id"] == osha10
        assert req["status"] == "valid"
        assert req["satisfied_via"] == {
            "certification_id": osha30,
            "certification_name": "OSHA 30",
            "assignment_id": thirty[emp],
        }
        assert req["expires_on"] == expires.isoformat()  # the providing record's expiry
    assert (
        gate(api, employee_id=ada, location_id=site)["requirements"][0]["assignment_id"]
        == (ten["id"])
    )
    # Ahead, once OSHA 30 has expired, OSHA 10 drops back to its own record (none): blocked.
    after = gate(api, employee_id=ada, location_id=site, on=expires + timedelta(days=1))
    assert after["allowed"] is False
    [blocking] = after["blocking"]
    assert (blocking["status"], blocking["satisfied_via"], blocking["expires_on"]) == (
        "missing",
        None,
        None,
    )

    view = members(api, site)
    entry = view["Ada"][osha10]
    assert (entry["status"], entry["satisfied_via"]["assignment_id"]) == ("valid", thirty[ada])
    assert entry["expires_on"] == expires.isoformat()
    assert list(members(api, site, status="valid")) == ["Ada"]
    assert members(api, site, status="missing") == {}
    ahead = members(api, site, on=expires + timedelta(days=1))["Ada"][osha10]
    assert (ahead["status"], ahead["satisfied_via"]) == ("missing", None)
    csv = api.get(f"/views/locations/{site}/members?format=csv").get_data(as_text=True)
    assert ",valid," in csv.splitlines()[1]
    locations = api.get("/views/locations?limit=50").get_json()["items"]
    [tower] = [v for v in locations if v["id"] == site]
    assert (tower["workforce"]["summary"]["valid"], tower["workforce"]["summary"]["missing"]) == (
        1,
        0,
    )

    # A revoked OSHA 10 stays revoked: a decision about OSHA 10, whatever OSHA 30 says.
    resp = api.post(f"/assignments/{ten['id']}/revoke", json={"reason": "forged card"})
    assert resp.status_code == 200, resp.get_json()
    revoked = gate(api, employee_id=ada, location_id=site)
    assert [(b["status"], b["satisfied_via"]) for b in revoked["blocking"]] == [("revoked", None)]
    assert members(api, site)["Ada"][osha10]["status"] == "revoked"


# --- past days, from history ----------------------------------------------------------------


def _role_world(as_tenant: Any, org: Any, make_role: Any, make_certification: Any, **cert: Any):
    role = make_role(org)
    c = make_certification(org, role_ids=[role.id], **cert)
    return role, c


def _move(as_tenant: Any, org: Any, emp: Any, role_id: Any, day: date) -> None:
    with as_tenant(org.id) as s:
        s.get(Employee, emp.id).role_id = role_id
        s.flush()
        fanout.fanout_employees(s, org.id, [emp.id], today=day, now=at(day))
        s.commit()


def _record(as_tenant: Any, org: Any, cert: Any, emp: Any, day: date, **dates: Any) -> Any:
    """Record (renew) the employee's assignment of `cert` on `day`."""
    with as_tenant(org.id) as s:
        [a] = (
            s.query(Assignment)
            .filter_by(certification_id=cert.id, subject_id=emp.id, revoked_at=None)
            .all()
        )
        service.renew_assignment(s, a, dates, actor=ACTOR, now=at(day))
        s.commit()
        return a.id


def test_gate_valid_on_1_march_expired_on_1_april(
    api, org, make_role, make_certification, make_employee, as_tenant
):
    role, cert = _role_world(as_tenant, org, make_role, make_certification, warning_days=7)
    emp = make_employee(org, name="Worker")
    _move(as_tenant, org, emp, role.id, date(2026, 2, 1))
    _record(
        as_tenant,
        org,
        cert,
        emp,
        date(2026, 2, 1),
        issued_on=date(2025, 3, 20),
        expires_on=date(2026, 3, 20),
    )
    march = gate(api, employee_id=emp.id, on=MARCH_1)
    assert march["allowed"] is True
    assert march["on"] == "2026-03-01"
    [req] = march["requirements"]
    assert (req["status"], req["expires_on"]) == ("valid", "2026-03-20")
    assert [(s["kind"], s["id"]) for s in req["sources"]] == [("role", str(role.id))]
    april = gate(api, employee_id=emp.id, on=APRIL_1)
    assert april["allowed"] is False
    assert [(b["certification_id"], b["status"]) for b in april["blocking"]] == [
        (str(cert.id), "expired")
    ]
    # A renewal recorded on 10 April does not rewrite 1 April: that day's cycle was the old one
    # (evaluating today's record on 1 April would say `upcoming`).
    _record(
        as_tenant,
        org,
        cert,
        emp,
        date(2026, 4, 10),
        issued_on=date(2026, 4, 10),
        expires_on=date(2027, 4, 10),
    )
    assert statuses(gate(api, employee_id=emp.id, on=APRIL_1)) == {str(cert.id): "expired"}
    assert statuses(gate(api, employee_id=emp.id, on=date(2026, 4, 15))) == {str(cert.id): "valid"}


def test_gate_joined_a_role_on_15_march_was_not_required_on_1_march(
    api, org, make_role, make_certification, make_employee, as_tenant, today
):
    role, cert = _role_world(as_tenant, org, make_role, make_certification)
    emp = make_employee(org, name="Joiner")
    _move(as_tenant, org, emp, role.id, date(2026, 3, 15))
    march_1 = gate(api, employee_id=emp.id, on=MARCH_1)
    assert (march_1["allowed"], march_1["requirements"]) == (True, [])
    march_20 = gate(api, employee_id=emp.id, on=date(2026, 3, 20))
    assert [(b["certification_id"], b["status"]) for b in march_20["blocking"]] == [
        (str(cert.id), "missing")
    ]
    # Left the role on 1 June: required in May, not after (and not today).
    _move(as_tenant, org, emp, None, date(2026, 6, 1))
    assert statuses(gate(api, employee_id=emp.id, on=date(2026, 5, 1))) == {str(cert.id): "missing"}
    assert gate(api, employee_id=emp.id, on=date(2026, 6, 2))["requirements"] == []
    assert gate(api, employee_id=emp.id)["requirements"] == []
    assert gate(api, employee_id=emp.id, on=today)["requirements"] == []


def test_gate_exemptions_and_equivalences_as_they_stood(
    api, org, make_role, make_certification, make_employee, as_tenant
):
    role = make_role(org)
    osha30 = make_certification(org, name="OSHA 30", warning_days=7)
    osha10 = make_certification(org, name="OSHA 10", role_ids=[role.id])
    with as_tenant(org.id) as s:
        s.add(CertificationEquivalence(certification_id=osha10.id, provider_id=osha30.id))
        s.commit()
    emp = make_employee(org, name="Ada")
    _move(as_tenant, org, emp, role.id, date(2026, 2, 1))
    with as_tenant(org.id) as s:
        data = {
            "certification_id": osha30.id,
            "subject_type": "employee",
            "subject_id": emp.id,
            "issued_on": date(2025, 3, 20),
            "expires_on": date(2026, 3, 20),
        }
        thirty = service.create_assignment(s, data, actor=ACTOR, now=at(date(2026, 2, 1))).id
        s.commit()
    march = gate(api, employee_id=emp.id, on=MARCH_1)
    [req] = march["requirements"]
    assert req["certification_id"] == str(osha10.id)
    assert (req["status"], req["expires_on"]) == ("valid", "2026-03-20")
    assert req["satisfied_via"] == {
        "certification_id": str(osha30.id),
        "certification_name": "OSHA 30",
        "assignment_id": str(thirty),
    }
    april = gate(api, employee_id=emp.id, on=APRIL_1)
    assert [(b["status"], b["satisfied_via"]) for b in april["blocking"]] == [("missing", None)]

    # Exempt from 1 May to 1 June: the exemption covered 15 May, not 15 June.
    with as_tenant(org.id) as s:
        [ten] = s.query(Assignment).filter_by(certification_id=osha10.id, subject_id=emp.id).all()
        exemptions.exempt(s, ten, "on leave", None, actor=ACTOR, now=at(date(2026, 5, 1)))
        s.commit()
    with as_tenant(org.id) as s:
        exemptions.lift(s, s.get(Assignment, ten.id), now=at(date(2026, 6, 1)))
        s.commit()
    may = gate(api, employee_id=emp.id, on=date(2026, 5, 15))
    assert (may["allowed"], may["requirements"][0]["exempt"]) == (True, True)
    june = gate(api, employee_id=emp.id, on=date(2026, 6, 15))
    assert (june["allowed"], june["requirements"][0]["exempt"]) == (False, False)


def test_site_requirements_and_members_view_as_they_stood(
    api, org, make_certification, make_employee, make_subject, as_tenant
):
    site = make_subject(org, "location", name="Pier 9")
    induction = make_certification(org, name="Pier 9 induction", warning_days=0)
    with as_tenant(org.id) as s:
        s.add(CertificationLocation(certification_id=induction.id, location_id=site.id))
        s.commit()
    flo = make_employee(org, name="Flo")
    with as_tenant(org.id) as s:
        s.add(Membership(employee_id=flo.id, location_id=site.id, starts_on=date(2026, 2, 1)))
        s.flush()
        fanout.fanout_employees(
            s, org.id, [flo.id], today=date(2026, 2, 1), now=at(date(2026, 2, 1))
        )
        s.commit()
    _record(
        as_tenant,
        org,
        induction,
        flo,
        date(2026, 2, 1),
        issued_on=date(2025, 3, 20),
        expires_on=date(2026, 3, 20),
    )
    _record(
        as_tenant,
        org,
        induction,
        flo,
        date(2026, 4, 10),
        issued_on=date(2026, 4, 10),
        expires_on=date(2027, 4, 10),
    )
    key = str(induction.id)
    assert members(api, site.id, on=MARCH_1)["Flo"][key]["status"] == "valid"
    april = members(api, site.id, on=APRIL_1)["Flo"][key]
    assert (april["status"], april["expires_on"]) == ("expired", "2026-03-20")
    assert list(members(api, site.id, on=APRIL_1, status="expired")) == ["Flo"]
    assert members(api, site.id, on=APRIL_1, status="upcoming") == {}
    assert members(api, site.id, on=date(2026, 1, 15)) == {}  # not on the roster yet
    view = api.get("/views/locations?on=2026-04-01").get_json()["items"]
    [pier] = [v for v in view if v["id"] == str(site.id)]
    assert pier["workforce"]["members"] == 1
    assert (pier["workforce"]["summary"]["expired"], pier["workforce"]["summary"]["upcoming"]) == (
        1,
        0,
    )
    # A visitor checked at the site on 1 April: the site's requirement, no record then.
    gus = make_employee(org, name="Gus")
    visit = gate(api, employee_id=gus.id, location_id=site.id, on=APRIL_1)
    assert [(b["certification_id"], b["status"]) for b in visit["blocking"]] == [(key, "missing")]
    flo_april = gate(api, employee_id=flo.id, location_id=site.id, on=APRIL_1)
    assert statuses(flo_april) == {key: "expired"}
    assert [s["kind"] for s in flo_april["requirements"][0]["sources"]] == ["location"]


def test_gate_check_is_one_statement_today_and_two_for_a_past_day(
    org, make_role, make_certification, make_employee, as_tenant, count_queries, today
):
    role = make_role(org)
    certs = [make_certification(org, role_ids=[role.id]) for _ in range(3)]
    with as_tenant(org.id) as s:
        s.add(CertificationEquivalence(certification_id=certs[0].id, provider_id=certs[1].id))
        s.commit()
    emp = make_employee(org, name="Budget")
    _move(as_tenant, org, emp, role.id, date(2026, 2, 1))
    past = AsOf.of("UTC", MARCH_1)
    with as_tenant(org.id) as s:
        with count_queries(where=data_only) as q:
            live = gate_check(s, org.id, "employee", emp.id, None, today)
        assert len(q) == 1, q
        with count_queries(where=data_only) as q:
            then = gate_check(s, org.id, "employee", emp.id, None, MARCH_1, past)
        assert len(q) == 2, q
    assert len(live["requirements"]) == len(then["requirements"]) == 3


def test_a_past_day_of_another_orgs_ids_is_404(api, org, make_org, make_employee, make_subject):
    other = make_org()
    theirs = make_employee(other, name="Theirs")
    their_site = make_subject(other, "location", name="Their site")
    mine = make_employee(org, name="Mine")
    for query in (
        f"employee_id={theirs.id}&on=2026-03-01",
        f"employee_id={mine.id}&location_id={their_site.id}&on=2026-03-01",
    ):
        assert api.get(f"/compliance/check?{query}").status_code == 404
    resp = api.get(f"/views/locations/{their_site.id}/members?on=2026-03-01")
    assert resp.status_code == 404
