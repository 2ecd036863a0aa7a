"""Assignments over HTTP: create, get, list, patch, renew, revoke, forms, history."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from certifications.assignments.models import Assignment, StatusEvent
from infra.database import utcnow
from tenancy.organizations import org_today


@pytest.fixture
def today(monkeypatch):
    """The org's today (its zone is UTC), with the API's clock held at the instant it was read,
    so the test's "today" and every request's agree even when the run crosses midnight."""
    import api.resources.assignments as resource

    now = utcnow()
    monkeypatch.setattr(resource, "utcnow", lambda: now)
    return org_today("UTC", now)


def _iso(d: date) -> str:
    return d.isoformat()


@pytest.fixture
def cert(org, make_certification):
    return make_certification(org, validity_months=12, warning_days=30)


@pytest.fixture
def emp(org, make_employee):
    return make_employee(org)


def _create(api, cert, subject, **extra):
    body = {
        "certification_id": str(cert.id),
        "subject_type": cert.type,
        "subject_id": str(subject.id),
        **extra,
    }
    return api.post("/assignments", json=body)


def test_create_without_record_is_missing(api, cert, emp):
    resp = _create(api, cert, emp)
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert body["status"] == "missing"
    assert body["source"] == "manual"
    assert body["issued_on"] is None
    assert body["created_by"] == "tester"
    assert api.get(f"/assignments/{body['id']}").get_json() == body


def test_create_with_dates_computes_expiry_and_status(api, org, emp, make_certification):
    cert = make_certification(org, validity_months=1, warning_days=10)
    issued = date(2024, 1, 31)
    body = _create(api, cert, emp, issued_on=_iso(issued)).get_json()
    assert body["effective_on"] == "2024-01-31"
    assert body["expires_on"] == "2024-02-29"  # month-end clamp, leap year
    assert body["expires_explicit"] is False
    assert body["status"] == "expired"


@pytest.mark.parametrize(
    ("offset_issued", "expires_in", "status"),
    [
        (-10, 100, "valid"),
        (-10, 30, "expires_soon"),
        (-10, 0, "expires_soon"),
        (-400, -1, "expired"),
        (5, 100, "upcoming"),
    ],
)
def test_statuses_from_dates(api, cert, emp, offset_issued, expires_in, status, today):
    issued = today + timedelta(days=offset_issued)
    expires = today + timedelta(days=expires_in)
    resp = _create(api, cert, emp, issued_on=_iso(issued), expires_on=_iso(max(expires, issued)))
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["status"] == status


def test_valid_when_added_records_today(api, org, emp, make_certification, today):
    cert = make_certification(org, valid_when_added=True, validity_days=90)
    body = _create(api, cert, emp).get_json()
    assert body["issued_on"] == _iso(today)
    assert body["expires_on"] == _iso(today + timedelta(days=90))
    assert body["status"] == "valid"


@pytest.mark.parametrize("kind", ["asset", "client", "location"])
def test_other_subject_types(api, org, kind, make_subject, make_certification):
    cert = make_certification(org, type=kind)
    subject = make_subject(org, kind)
    resp = _create(api, cert, subject)
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["subject_type"] == kind


def test_subject_type_must_match_certification(api, org, cert, make_subject):
    asset = make_subject(org, "asset")
    resp = api.post(
        "/assignments",
        json={
            "certification_id": str(cert.id),
            "subject_type": "asset",
            "subject_id": str(asset.id),
        },
    )
    assert resp.status_code == 422
    assert "subject_type" in resp.get_json()["errors"]


def test_unknown_or_foreign_subject_and_certification_are_422(
    api, make_org, cert, make_employee, make_certification
):
    other = make_org()
    foreign_emp = make_employee(other)
    foreign_cert = make_certification(other)
    resp = _create(api, cert, foreign_emp)
    assert resp.status_code == 422
    assert "subject_id" in resp.get_json()["errors"]
    resp = api.post(
        "/assignments",
        json={
            "certification_id": str(foreign_cert.id),
            "subject_type": "employee",
            "subject_id": str(uuid.uuid4()),
        },
    )
    assert resp.status_code == 422
    assert "certification_id" in resp.get_json()["errors"]


def test_archived_certification_refused(api, org, emp, make_certification):
    from infra.database import utcnow

    cert = make_certification(org, archived_at=utcnow())
    resp = _create(api, cert, emp)
    assert resp.status_code == 422
    assert "certification_id" in resp.get_json()["errors"]


def test_validation_names_fields(api, cert, emp):
    resp = api.post(
        "/assignments",
        json={
            "certification_id": "nope",
            "subject_type": "robot",
            "subject_id": str(emp.id),
            "issued_on": "2024-13-01",
            "status": "valid",
            "notes": "a\x00b",
        },
    )
    assert resp.status_code == 422
    errors = resp.get_json()["errors"]["json"]
    assert set(errors) == {"certification_id", "subject_type", "issued_on", "status", "notes"}
    resp = _create(api, cert, emp, issued_on="0001-01-01")
    assert resp.status_code == 422
    assert "issued_on" in resp.get_json()["errors"]["json"]


def test_date_rules_are_422(api, cert, emp):
    resp = _create(api, cert, emp, expires_on="2030-01-01")
    assert resp.status_code == 422
    assert "issued_on" in resp.get_json()["errors"]
    resp = _create(api, cert, emp, issued_on="2030-01-01", expires_on="2029-01-01")
    assert resp.status_code == 422
    assert "expires_on" in resp.get_json()["errors"]


# Forms `date.fromisoformat` (hence marshmallow's Date) accepts on Python 3.11 besides
# YYYY-MM-DD: compact and ISO-week dates (attack run, defect 18: "20260101" was stored).
LENIENT_DATES = ["20260101", "2026-W01-1", "2026W011", "2026-01-01 ", "\uff12026-01-01"]


@pytest.mark.parametrize("value", LENIENT_DATES)
def test_dates_are_yyyy_mm_dd_only(api, cert, emp, value):
    resp = _create(api, cert, emp, issued_on=value)
    assert resp.status_code == 422, resp.get_json()
    assert "YYYY-MM-DD" in resp.get_json()["errors"]["json"]["issued_on"][0]
    aid = _create(api, cert, emp).get_json()["id"]
    resp = api.patch(f"/assignments/{aid}", json={"expires_on": value})
    assert resp.status_code == 422, resp.get_json()
    assert "expires_on" in resp.get_json()["errors"]["json"]
    resp = api.post(f"/assignments/{aid}/renew", json={"issued_on": value})
    assert resp.status_code == 422, resp.get_json()
    assert "issued_on" in resp.get_json()["errors"]["json"]


@pytest.mark.parametrize("value", LENIENT_DATES)
def test_form_date_answers_are_yyyy_mm_dd_only(api, org, emp, value, make_certification):
    cert = make_certification(org.id, forms_required=True, form=FORM)
    aid = _create(api, cert, emp).get_json()["id"]
    answers = {"score": 1, "passed": True, "taken_on": value}
    resp = api.post(f"/assignments/{aid}/form-submissions", json={"answers": answers})
    assert resp.status_code == 422, resp.get_json()
    assert list(resp.get_json()["errors"]["answers"]) == ["taken_on"]


def test_one_live_assignment_per_subject(api, cert, emp):
    first = _create(api, cert, emp).get_json()
    resp = _create(api, cert, emp)
    assert resp.status_code == 409
    assert resp.get_json()["errors"]["assignment_id"] == [first["id"]]
    api.post(f"/assignments/{first['id']}/revoke", json={"reason": "replaced"})
    assert _create(api, cert, emp).status_code == 201  # revoked ones do not hold the slot


def test_scopes(api_for, org, cert, emp):
    reader = api_for(org, scopes=["certifications:read"])
    assert _create(reader, cert, emp).status_code == 403
    created = _create(api_for(org, scopes=["certifications:create"]), cert, emp)
    assert created.status_code == 201
    aid = created.get_json()["id"]
    assert reader.get(f"/assignments/{aid}").status_code == 200
    assert reader.get("/assignments").status_code == 200
    assert reader.get(f"/assignments/{aid}/history").status_code == 200
    for path, body in [
        (f"/assignments/{aid}/renew", {}),
        (f"/assignments/{aid}/revoke", {"reason": "x"}),
        (f"/assignments/{aid}/form-submissions", {"answers": {}}),
    ]:
        assert reader.post(path, json=body).status_code == 403, path
    assert reader.patch(f"/assignments/{aid}", json={"notes": "x"}).status_code == 403
    nobody = api_for(org, scopes=["directory:read"])
    assert nobody.get("/assignments").status_code == 403


def test_module_disabled(api_for, make_org):
    org = make_org(modules=())
    resp = api_for(org).get("/assignments")
    assert resp.status_code == 403
    assert resp.get_json()["code"] == "module_disabled"


def test_list_filters_and_pagination(api, org, cert, make_employees, make_certification, today):
    people = make_employees(org, 5)
    other_cert = make_certification(org)
    ids = []
    for i, person in enumerate(people):
        issued = {"issued_on": _iso(today - timedelta(days=1))} if i % 2 else {}
        ids.append(_create(api, cert, person, **issued).get_json()["id"])
    _create(api, other_cert, people[0])
    page = api.get(f"/assignments?certification_id={cert.id}&limit=2").get_json()
    seen = [a["id"] for a in page["items"]]
    while page["next_cursor"]:
        page = api.get(
            f"/assignments?certification_id={cert.id}&limit=2&cursor={page['next_cursor']}"
        ).get_json()
        seen += [a["id"] for a in page["items"]]
    assert sorted(seen) == sorted(ids)
    missing = api.get(f"/assignments?certification_id={cert.id}&status=missing").get_json()
    assert len(missing["items"]) == 3
    valid = api.get("/assignments?status=valid&source=manual&required=true").get_json()
    assert len(valid["items"]) == 2
    by_subject = api.get(f"/assignments?subject_type=employee&subject_id={people[0].id}")
    assert len(by_subject.get_json()["items"]) == 2
    assert api.get("/assignments?source=role").get_json()["items"] == []
    bad = api.get("/assignments?status=great&limit=100000&subject_id=x")
    assert bad.status_code == 422
    assert set(bad.get_json()["errors"]["query"]) == {"status", "limit", "subject_id"}
    assert api.get("/assignments?cursor=garbage").status_code == 422


def test_patch_dates_and_notes(api, cert, emp, today):
    aid = _create(api, cert, emp).get_json()["id"]
    resp = api.patch(f"/assignments/{aid}", json={"issued_on": _iso(today), "notes": "scan"})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["status"] == "valid"
    assert body["effective_on"] == _iso(today)
    assert body["notes"] == "scan"
    assert body["expires_on"] is not None
    resp = api.patch(f"/assignments/{aid}", json={"expires_on": _iso(today + timedelta(days=3))})
    assert resp.get_json()["status"] == "expires_soon"
    assert resp.get_json()["expires_explicit"] is True
    soon = resp.get_json()["expires_on"]
    resp = api.patch(f"/assignments/{aid}", json={"issued_on": _iso(today - timedelta(days=1))})
    assert resp.get_json()["expires_on"] == soon  # an explicit expiry stays
    resp = api.patch(f"/assignments/{aid}", json={"expires_on": None})
    assert resp.get_json()["expires_explicit"] is False
    assert resp.get_json()["status"] == "valid"  # computed again: a year from the issue date
    resp = api.patch(f"/assignments/{aid}", json={"issued_on": None})
    assert resp.get_json()["status"] == "missing"
    assert resp.get_json()["expires_on"] is None
    assert api.patch(f"/assignments/{aid}", json={}).status_code == 422
    resp = api.patch(f"/assignments/{aid}", json={"subject_id": str(uuid.uuid4())})
    assert resp.status_code == 422
    assert "subject_id" in resp.get_json()["errors"]["json"]


def test_every_status_change_writes_one_event(api, cert, emp, org, as_tenant, today):
    aid = _create(api, cert, emp).get_json()["id"]
    api.patch(f"/assignments/{aid}", json={"notes": "no status change"})
    api.patch(f"/assignments/{aid}", json={"issued_on": _iso(today)})
    api.post(f"/assignments/{aid}/revoke", json={"reason": "fraud"})
    with as_tenant(org.id) as s:
        events = s.execute(
            select(StatusEvent.from_status, StatusEvent.to_status)
            .where(StatusEvent.assignment_id == uuid.UUID(aid))
            .order_by(StatusEvent.created_at)
        ).all()
    assert [tuple(e) for e in events] == [
        ("missing", "valid"),
        ("valid", "revoked"),
    ]


def test_renew_keeps_previous_cycle(api, cert, emp, today):
    first = _create(api, cert, emp, issued_on="2020-01-15").get_json()
    assert first["status"] == "expired"
    resp = api.post(f"/assignments/{first['id']}/renew", json={"issued_on": _iso(today)})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["cycle"] == 2
    assert body["status"] == "valid"
    assert body["issued_on"] == _iso(today)
    history = api.get(f"/assignments/{first['id']}/history").get_json()
    assert [(c["cycle"], c["current"]) for c in history["cycles"]] == [(1, False), (2, True)]
    assert history["cycles"][0]["issued_on"] == "2020-01-15"
    assert history["cycles"][0]["expires_on"] == "2021-01-15"
    events = [(e["from_status"], e["to_status"], e["cycle"]) for e in history["status_events"]]
    assert events == [("expired", "valid", 2)]


def test_renew_defaults_and_explicit_expiry(api, cert, emp, today):
    aid = _create(api, cert, emp).get_json()["id"]
    body = api.post(f"/assignments/{aid}/renew", json={}).get_json()
    assert body["issued_on"] == _iso(today)
    future = today + timedelta(days=7)
    body = api.post(
        f"/assignments/{aid}/renew",
        json={"issued_on": _iso(future), "expires_on": _iso(future + timedelta(days=400))},
    ).get_json()
    assert body["status"] == "upcoming"
    assert body["cycle"] == 3
    resp = api.post(f"/assignments/{aid}/renew", json={"issued_on": "yesterday"})
    assert resp.status_code == 422
    assert "issued_on" in resp.get_json()["errors"]["json"]


def test_revoke(api, cert, emp, today):
    aid = _create(api, cert, emp, issued_on=_iso(today)).get_json()["id"]
    resp = api.post(f"/assignments/{aid}/revoke", json={})
    assert resp.status_code == 422
    assert "reason" in resp.get_json()["errors"]["json"]
    assert api.post(f"/assignments/{aid}/revoke", json={"reason": "  "}).status_code == 422
    resp = api.post(f"/assignments/{aid}/revoke", json={"reason": "Failed audit"})
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["status"] == "revoked"
    assert body["revoked_by"] == "tester"
    assert body["revoked_reason"] == "Failed audit"
    assert body["revoked_at"]
    assert api.post(f"/assignments/{aid}/revoke", json={"reason": "again"}).status_code == 409
    assert api.post(f"/assignments/{aid}/renew", json={}).status_code == 409
    assert api.patch(f"/assignments/{aid}", json={"issued_on": _iso(today)}).status_code == 409


def test_parallel_renewals_in_process_each_open_one_cycle(api, api_for, org, cert, emp, today):
    """The embedded runtime serves requests on threads: renewals there take turns too.

    SQLite has no row locks; without the service's write lock 40 renewals ended at cycle 3-7
    (the live PostgreSQL stack's version is in tests/concurrency/test_assignments.py).
    """
    aid = _create(api, cert, emp, issued_on=_iso(today)).get_json()["id"]
    threads = 8
    barrier = threading.Barrier(threads)

    def renew(i: int) -> int:
        client = api_for(org)
        if i < threads:
            barrier.wait(timeout=30)
        # Distinct expiries: a renewal repeating the current cycle's dates opens no cycle.
        expires = _iso(today + timedelta(days=400 + i))
        return int(
            client.post(f"/assignments/{aid}/renew", json={"expires_on": expires}).status_code
        )

    with ThreadPoolExecutor(threads) as pool:
        statuses = list(pool.map(renew, range(40)))

    assert statuses == [200] * 40
    history = api.get(f"/assignments/{aid}/history").get_json()
    assert [c["cycle"] for c in history["cycles"]] == list(range(1, 42))


FORM = {
    "fields": [
        {"name": "score", "label": "Score", "type": "number", "required": True},
        {"name": "passed", "label": "Passed", "type": "boolean", "required": True},
        {"name": "taken_on", "label": "Taken on", "type": "date", "required": False},
        {"name": "level", "label": "Level", "type": "choice", "choices": ["basic", "advanced"]},
        {"name": "comment", "label": "Comment", "type": "text"},
    ]
}


def test_form_submission_records_certification(
    api, org, emp, make_certification, today, smtp, jobs
):
    cert = make_certification(org, forms_required=True, form=FORM, validity_months=12)
    created = _create(api, cert, emp, issued_on=_iso(today)).get_json()
    assert created["status"] == "missing"  # forms required, none accepted yet
    resp = api.post(
        f"/assignments/{created['id']}/form-submissions",
        json={"answers": {"score": 92, "passed": True, "level": "basic", "taken_on": "2024-02-01"}},
    )
    # forms_required implies review: the answers wait in the queue, nothing is recorded yet
    assert resp.status_code == 202, resp.get_json()
    pending = resp.get_json()
    assert pending["status"] == "pending"
    assert pending["answers"]["score"] == 92
    waiting = api.get(f"/assignments/{created['id']}").get_json()
    assert (waiting["status"], waiting["form_accepted_at"]) == ("missing", None)
    assert waiting["pending_submission"] == pending["id"]
    queue = api.get("/submissions?status=pending").get_json()["items"]
    assert [s["id"] for s in queue] == [pending["id"]]
    approved = api.post(f"/submissions/{pending['id']}/approve")
    assert approved.status_code == 200, approved.get_json()
    body = api.get(f"/assignments/{created['id']}").get_json()
    assert body["status"] == "valid"
    assert body["form_accepted_at"]
    history = api.get(f"/assignments/{created['id']}/history").get_json()
    assert history["form_submissions"][0]["answers"]["score"] == 92
    jobs.drain()  # the reviewers' and the holder's notices reach the SMTP sink here


def test_a_form_without_review_is_accepted_at_once(api, org, emp, make_certification, today):
    cert = make_certification(org, form=FORM)  # a form to fill in, no review asked for
    created = _create(api, cert, emp, issued_on=_iso(today)).get_json()
    resp = api.post(
        f"/assignments/{created['id']}/form-submissions",
        json={"answers": {"score": 92, "passed": True}},
    )
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["status"] == "accepted"
    assert api.get(f"/assignments/{created['id']}").get_json()["form_accepted_at"]


def test_form_submission_without_record_issues_today(
    api, org, emp, make_certification, today, smtp, jobs
):
    cert = make_certification(org, forms_required=True, form=FORM, validity_days=30)
    aid = _create(api, cert, emp).get_json()["id"]
    resp = api.post(
        f"/assignments/{aid}/form-submissions", json={"answers": {"score": 1, "passed": False}}
    )
    assert resp.status_code == 202
    assert api.post(f"/submissions/{resp.get_json()['id']}/approve").status_code == 200
    body = api.get(f"/assignments/{aid}").get_json()
    assert body["issued_on"] == _iso(today)
    assert body["status"] == "expires_soon"
    jobs.drain()


def test_form_answers_validated(api, org, emp, make_certification):
    cert = make_certification(org, forms_required=True, form=FORM)
    aid = _create(api, cert, emp).get_json()["id"]
    resp = api.post(
        f"/assignments/{aid}/form-submissions",
        json={
            "answers": {
                "score": "high",
                "level": "expert",
                "taken_on": "soon",
                "comment": 5,
                "extra": 1,
            }
        },
    )
    assert resp.status_code == 422
    errors = resp.get_json()["errors"]["answers"]
    assert set(errors) == {"score", "passed", "level", "taken_on", "comment", "extra"}
    assert "score" in resp.get_json()["message"]
    assert api.get(f"/assignments/{aid}").get_json()["status"] == "missing"
    resp = api.post(f"/assignments/{aid}/form-submissions", json={"answers": []})
    assert resp.status_code == 422
    assert "answers" in resp.get_json()["errors"]["json"]


def test_form_submission_without_form_is_409(api, cert, emp):
    aid = _create(api, cert, emp).get_json()["id"]
    resp = api.post(f"/assignments/{aid}/form-submissions", json={"answers": {}})
    assert resp.status_code == 409


ID_ROUTES = [
    ("get", "/assignments/{id}", None),
    ("patch", "/assignments/{id}", {"notes": "hijack"}),
    ("post", "/assignments/{id}/renew", {"issued_on": "2024-01-01"}),
    ("post", "/assignments/{id}/revoke", {"reason": "hijack"}),
    ("post", "/assignments/{id}/form-submissions", {"answers": {"score": 1, "passed": True}}),
    ("get", "/assignments/{id}/history", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ID_ROUTES)
def test_cross_tenant_is_404_and_row_unchanged(
    api_for, make_org, as_tenant, method, path, body, make_employee, make_certification
):
    owner, intruder = make_org(), make_org()
    cert = make_certification(owner, forms_required=True, form=FORM)
    person = make_employee(owner)
    created = _create(api_for(owner), cert, person).get_json()
    url = path.format(id=created["id"])
    kwargs = {"json": body} if body is not None else {}
    resp = getattr(api_for(intruder), method)(url, **kwargs)
    assert resp.status_code == 404
    assert resp.get_json()["code"] == 404
    missing = getattr(api_for(owner), method)(path.format(id=uuid.uuid4()), **kwargs)
    assert missing.status_code == 404
    assert api_for(owner).get(f"/assignments/{created['id']}").get_json() == created
    with as_tenant(owner.id) as s:
        events = s.scalar(select(func.count()).select_from(StatusEvent))
        rows = s.scalar(select(func.count()).select_from(Assignment))
    assert (events, rows) == (0, 1)


def test_list_never_shows_other_orgs(api_for, make_org, make_employee, make_certification):
    a, b = make_org(), make_org()
    cert = make_certification(a)
    _create(api_for(a), cert, make_employee(a))
    assert len(api_for(a).get("/assignments").get_json()["items"]) == 1
    assert api_for(b).get("/assignments").get_json()["items"] == []
    assert api_for(b).get(f"/assignments?certification_id={cert.id}").get_json()["items"] == []


@pytest.mark.parametrize(
    ("answers", "field"),
    [
        ({"score": 10**400, "passed": True}, "score"),
        ({"score": True, "passed": True}, "score"),
        ({"score": 1, "passed": "yes"}, "passed"),
        ({"score": 1, "passed": True, "comment": "x" * 10_001}, "comment"),
        ({"score": 1, "passed": True, "comment": "a\x00b"}, "comment"),
        ({"score": 1, "passed": True, "level": {"value": "basic"}}, "level"),
    ],
)
def test_form_answer_edge_cases_are_422(api, org, emp, answers, field, make_certification):
    cert = make_certification(org, forms_required=True, form=FORM)
    aid = _create(api, cert, emp).get_json()["id"]
    resp = api.post(f"/assignments/{aid}/form-submissions", json={"answers": answers})
    assert resp.status_code == 422, resp.get_json()
    assert list(resp.get_json()["errors"]["answers"]) == [field]


def test_race_for_the_live_slot_is_409(api, cert, emp, monkeypatch):
    """Two requests past the pre-check at once: the unique index answers, as a 409."""
    from certifications.assignments import service

    assert _create(api, cert, emp).status_code == 201
    monkeypatch.setattr(service, "_refuse_second_live", lambda *_a: None)
    resp = _create(api, cert, emp)
    assert resp.status_code == 409
    assert resp.get_json()["code"] == 409
    assert len(api.get(f"/assignments?subject_id={emp.id}").get_json()["items"]) == 1


def test_each_cycle_records_who_recorded_it(api_for, org, cert, emp):
    """The renewer is stamped on the cycle they recorded (it used to be the creator's name)."""
    creator, renewer = api_for(org, sub="hr-clerk"), api_for(org, sub="site-manager")
    first = _create(creator, cert, emp, issued_on="2020-01-15").get_json()
    assert renewer.post(f"/assignments/{first['id']}/renew", json={}).status_code == 200
    assert (
        renewer.post(
            f"/assignments/{first['id']}/renew", json={"expires_on": "2099-01-01"}
        ).status_code
        == 200
    )
    cycles = creator.get(f"/assignments/{first['id']}/history").get_json()["cycles"]
    assert [(c["cycle"], c["recorded_by"]) for c in cycles] == [
        (1, "hr-clerk"),
        (2, "site-manager"),
        (3, "site-manager"),
    ]


def test_status_filter_takes_several_values_repeated_or_comma_separated(
    api, cert, org, make_employee, today
):
    missing = _create(api, cert, make_employee(org)).get_json()["id"]
    valid = _create(
        api,
        cert,
        make_employee(org),
        issued_on=_iso(today),
        expires_on=_iso(today + timedelta(days=730)),
    ).get_json()["id"]

    def ids(query):
        resp = api.get(f"/assignments?{query}")
        assert resp.status_code == 200, resp.get_json()
        return {item["id"] for item in resp.get_json()["items"]}

    assert ids("status=missing") == {missing}
    assert ids("status=missing&status=valid") == {missing, valid}
    assert ids("status=missing,valid") == {missing, valid}
    assert ids("status=expired") == set()
    resp = api.get("/assignments?status=missing,bogus")
    assert resp.status_code == 422
    assert "status" in resp.get_json()["errors"]["query"]
