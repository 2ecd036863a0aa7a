"""Reminder plans, snoozes and digests end to end: written through the HTTP API, driven by the
org's tick at pinned instants, delivered by the worker to the real SMTP sink.

The expiry dates lie months after the org's real today, so the ticks that API writes request
(run by `jobs.drain()` on the real clock) find nothing due; only the pinned ticks send.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from infra.database import utcnow
from tenancy.organizations import org_today
from workers.tick import tick_now

NEW_YORK = "America/New_York"
HOLDER, MANAGER, BOSS = "ada@example.test", "grace@example.test", "boss@example.test"
PLAN = {
    "stages": [
        {"offset_days": -60, "recipients": ["holder"], "channels": ["email"]},
        {
            "offset_days": -30,
            "recipients": ["holder", "manager"],
            "channels": ["email"],
            "repeat_every_days": 7,
            "max_repeats": 2,
        },
        # Escalation after the expiry, again a week later if still not renewed.
        {
            "offset_days": 14,
            "recipients": ["admins", "manager"],
            "channels": ["email"],
            "repeat_every_days": 7,
            "max_repeats": 1,
        },
    ],
    "stop_when": "renewed",
}


@pytest.fixture
def today() -> date:
    return org_today("UTC", utcnow())


def _at(day: date, hour: int = 12, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=UTC)


def _local(day: date, hour: int, zone: str, minute: int = 0) -> datetime:
    """That wall-clock time in `zone`, as a UTC instant (daylight saving included)."""
    return datetime.combine(day, time(hour, minute), tzinfo=ZoneInfo(zone)).astimezone(UTC)


def _ok(resp, status=200):
    assert resp.status_code == status, resp.get_data(as_text=True)
    return resp.get_json()


def _error_fields(resp) -> set[str]:
    """The fields a 422 names (schema errors nest under their location, domain ones do not)."""
    errors = resp.get_json()["errors"]
    return set(errors.get("json", errors))


def _employee(api, name, email, **extra):
    return _ok(api.post("/employees", json={"name": name, "email": email, **extra}), 201)


def _certification(api, name, plan, type_="employee"):
    body = {"name": name, "type": type_, "validity": {"months": 12}, "reminder_plan": plan}
    return _ok(api.post("/certifications", json=body), 201)


def _assign(api, cert, subject_id, expires_on):
    body = {
        "certification_id": cert["id"],
        "subject_type": cert["type"],
        "subject_id": subject_id,
        "issued_on": (expires_on - timedelta(days=365)).isoformat(),
        "expires_on": expires_on.isoformat(),
    }
    return _ok(api.post("/assignments", json=body), 201)


class Ticks:
    """Run the org's tick at a pinned instant, deliver, and answer who got mail."""

    def __init__(self, org, smtp, jobs):
        self.org, self.smtp, self.jobs = org, smtp, jobs

    def __call__(self, when: datetime) -> list[str]:
        self.jobs.drain()  # whatever the API writes queued runs first, on the real clock
        before = len(self.smtp.messages)
        tick_now(now=when, org_id=self.org.id)
        self.jobs.drain()
        return sorted(r for m in self.smtp.messages[before:] for r in m.rcpt_tos)


def test_three_stage_plan_with_weekly_repeats_sends_exactly_the_plan_and_stops_at_renewal(
    make_org, api_for, smtp, jobs, today
):
    org = make_org(admin_emails=[BOSS])
    api = api_for(org)
    manager = _employee(api, "Grace", MANAGER)
    holder = _employee(api, "Ada", HOLDER, manager_id=manager["id"])
    assert holder["manager_id"] == manager["id"]
    cert = _certification(api, "Confined Space Entry", PLAN)
    assert cert["reminder_plan"]["stages"][1]["repeat_every_days"] == 7
    # Only the first stage says what a rule can: the compatible field shows just that one.
    assert cert["notification_rules"] == [
        {"trigger": "before_expiry", "days": 60, "recipients": ["holder"], "channels": ["email"]}
    ]
    expiry = today + timedelta(days=200)
    assignment = _assign(api, cert, holder["id"], expiry)
    tick = Ticks(org, smtp, jobs)

    sent = {offset: tick(_at(expiry + timedelta(days=offset))) for offset in (-60, -30, -23, -16)}
    assert sent == {
        -60: [HOLDER],
        -30: [HOLDER, MANAGER],
        -23: [HOLDER, MANAGER],
        -16: [HOLDER, MANAGER],
    }
    assert tick(_at(expiry + timedelta(days=-16), hour=18)) == []  # a second tick that day
    assert tick(_at(expiry)) == []  # the weekly stage ran out of repeats; nothing at 0
    assert tick(_at(expiry + timedelta(days=14))) == [BOSS, MANAGER]  # the escalation

    notes = _ok(api.get(f"/notifications?assignment_id={assignment['id']}&limit=100"))["items"]
    assert len(notes) == 9
    assert {n["status"] for n in notes} == {"sent"}
    assert sorted((n["rule_key"], n["repetition"]) for n in notes if n["recipient"] == MANAGER) == [
        ("after_expiry:14", 0),
        ("before_expiry:30", 0),
        ("before_expiry:30", 1),
        ("before_expiry:30", 2),
    ]
    ids = [m.message_id for m in smtp.messages]
    assert len(ids) == len(set(ids)) == 9

    _ok(api.post(f"/assignments/{assignment['id']}/renew", json={}))
    # Without the renewal the escalation would repeat a week later; renewed, nothing more.
    for offset in (21, 28, 60):
        assert tick(_at(expiry + timedelta(days=offset))) == []
    assert len(smtp.messages) == 9


def test_a_snoozed_assignment_gets_nothing_until_its_date(make_org, api_for, smtp, jobs, today):
    org = make_org(admin_emails=[BOSS])
    api = api_for(org)
    holder = _employee(api, "Ada", HOLDER)
    plan = {"stages": [PLAN["stages"][1]]}  # -30, weekly, two repeats
    cert = _certification(api, "Forklift", plan)
    expiry = today + timedelta(days=200)
    assignment = _assign(api, cert, holder["id"], expiry)
    until = expiry - timedelta(days=16)

    snoozed = _ok(
        api.post(
            f"/assignments/{assignment['id']}/snooze",
            json={"until": until.isoformat(), "reason": "On leave"},
        )
    )
    assert snoozed["snooze"]["until"] == until.isoformat()
    assert snoozed["snooze"]["reason"] == "On leave"
    assert snoozed["status"] == assignment["status"]  # reminders pause, the status does not
    tick = Ticks(org, smtp, jobs)
    assert tick(_at(expiry - timedelta(days=30))) == []
    assert tick(_at(expiry - timedelta(days=23))) == []
    assert tick(_at(expiry - timedelta(days=17), hour=23)) == []  # its last snoozed day
    assert _ok(api.get(f"/notifications?assignment_id={assignment['id']}"))["items"] == []
    assert tick(_at(until)) == [HOLDER]  # its date: the repetition due that day, only
    assert _ok(api.get(f"/assignments/{assignment['id']}"))["snooze"] is None
    (note,) = _ok(api.get(f"/notifications?assignment_id={assignment['id']}"))["items"]
    assert (note["rule_key"], note["repetition"]) == ("before_expiry:30", 2)


def test_snooze_refuses_a_past_date_and_can_be_lifted(make_org, api_for, jobs, today):
    org = make_org()
    api = api_for(org)
    holder = _employee(api, "Ada", HOLDER)
    cert = _certification(api, "Forklift", {"stages": [PLAN["stages"][0]]})
    assignment = _assign(api, cert, holder["id"], today + timedelta(days=200))
    path = f"/assignments/{assignment['id']}/snooze"
    resp = api.post(path, json={"until": today.isoformat()})
    assert resp.status_code == 422
    assert _error_fields(resp) == {"until"}
    _ok(api.post(path, json={"until": (today + timedelta(days=3)).isoformat()}))
    assert _ok(api.delete(path))["snooze"] is None


def test_a_daily_digest_recipient_gets_one_email_for_twenty_due_items(
    make_org, api_for, smtp, jobs, today
):
    org = make_org(timezone=NEW_YORK)
    api = api_for(org)
    ops = "Ops@Example.test"
    plan = {"stages": [{"offset_days": -30, "recipients": [ops], "channels": ["email"]}]}
    people = _certification(api, "First Aid", plan)
    sites = _certification(api, "Fire Inspection", plan, type_="location")
    base = today + timedelta(days=200)
    for i in range(10):
        emp = _employee(api, f"Worker {i:02}", f"w{i}@example.test")
        _assign(api, people, emp["id"], base + timedelta(days=i))
    for i in range(10):  # a location is its own site
        site = _ok(api.post("/locations", json={"name": f"Site {i}"}), 201)
        _assign(api, sites, site["id"], base + timedelta(days=i))
    pref = _ok(api.put("/notification-preferences/ops@example.test", json={"frequency": "daily"}))
    assert (pref["email"], pref["frequency"], pref["hour"]) == ("ops@example.test", "daily", 8)

    tick = Ticks(org, smtp, jobs)
    day = base  # every record expires within 30 days of it
    assert tick(_local(day, 7, NEW_YORK)) == []  # before the digest hour, there
    notes = _ok(api.get("/notifications?limit=100"))["items"]
    assert len(notes) == 20
    assert {n["status"] for n in notes} == {"pending"}
    assert tick(_local(day, 8, NEW_YORK, 30)) == ["ops@example.test"]  # one email, all twenty
    assert tick(_local(day, 17, NEW_YORK)) == []  # the same day again: that period's is made
    assert tick(_local(day + timedelta(days=1), 9, NEW_YORK)) == []  # nothing new the next day

    (mail,) = smtp.messages
    text = mail.part("plain").replace("\r\n", "\n")
    assert "20 certification reminders" in mail.message["Subject"]
    assert "No site (10)\n  First Aid (10)\n" in text  # employees: no site (yet)
    assert "Site 3 (1)\n  Fire Inspection (1)\n" in text
    assert text.count("Fire Inspection (1)") == 10
    assert text.count(" expires ") == 20
    assert (base + timedelta(days=9)).isoformat() in text
    notes = _ok(api.get("/notifications?limit=100"))["items"]
    assert {n["status"] for n in notes} == {"sent"}
    assert len({n["digest_id"] for n in notes}) == 1
    assert notes[0]["digest_id"] is not None


def test_the_org_setting_makes_digests_for_everyone_without_a_preference(
    make_org, api_for, smtp, jobs, today
):
    org = make_org()
    api = api_for(org)
    org_json = _ok(
        api.patch(
            "/org", json={"digest_frequency": "weekly", "digest_hour": 9, "digest_weekday": 2}
        )
    )
    assert (org_json["digest_frequency"], org_json["digest_weekday"]) == ("weekly", 2)
    _ok(api.put(f"/notification-preferences/{HOLDER}", json={"frequency": "immediate"}))
    plan = {"stages": [{"offset_days": -30, "recipients": ["holder", BOSS], "channels": ["email"]}]}
    cert = _certification(api, "Working at Height", plan)
    base = today + timedelta(days=200)
    while base.weekday() != 1:  # a Tuesday: the weekly digest goes out on Wednesday
        base += timedelta(days=1)
    for i in range(3):
        emp = _employee(api, f"W{i}", HOLDER if i == 0 else f"w{i}@example.test")
        _assign(api, cert, emp["id"], base + timedelta(days=i))
    tick = Ticks(org, smtp, jobs)
    # Tuesday: the holder who asked for immediate mail gets it; the others wait.
    assert tick(_at(base, hour=10)) == [HOLDER]
    assert tick(_at(base + timedelta(days=1), hour=8)) == []  # Wednesday before 09:00
    got = tick(_at(base + timedelta(days=1), hour=9))
    assert got == [BOSS, "w1@example.test", "w2@example.test"]  # one digest each
    boss_mail = smtp.to(BOSS)[0]
    assert "3 certification reminders" in boss_mail.message["Subject"]


def test_manager_references_must_be_employees_of_the_org(make_org, api_for):
    org, other = make_org(), make_org()
    api, foreign_api = api_for(org), api_for(other)
    stranger = _employee(foreign_api, "Stranger", "s@example.test")
    me = _employee(api, "Ada", HOLDER)
    resp = api.post("/employees", json={"name": "Bob", "manager_id": stranger["id"]})
    assert resp.status_code == 422
    assert _error_fields(resp) == {"manager_id"}
    resp = api.patch(f"/employees/{me['id']}", json={"manager_id": me["id"]})
    assert resp.status_code == 422
    resp = api.post("/locations", json={"name": "Depot", "manager_ids": [stranger["id"]]})
    assert resp.status_code == 422
    assert _error_fields(resp) == {"manager_ids"}
    depot = _ok(api.post("/locations", json={"name": "Depot", "manager_ids": [me["id"]]}), 201)
    assert depot["manager_ids"] == [me["id"]]


def test_location_managers_get_the_reminders_of_their_locations(
    make_org, api_for, smtp, jobs, today
):
    org = make_org()
    api = api_for(org)
    boss = _employee(api, "Grace", MANAGER)
    depot = _ok(api.post("/locations", json={"name": "Depot", "manager_ids": [boss["id"]]}), 201)
    plain = _ok(api.post("/locations", json={"name": "Yard"}), 201)
    plan = {
        "stages": [
            {
                "offset_days": -30,
                "recipients": ["location_managers", "custodian"],
                "channels": ["email"],
            }
        ]
    }
    cert = _certification(api, "Fire Inspection", plan, type_="location")
    expiry = today + timedelta(days=200)
    _assign(api, cert, depot["id"], expiry)
    _assign(api, cert, plain["id"], expiry)
    assert Ticks(org, smtp, jobs)(_at(expiry - timedelta(days=30))) == [MANAGER]


def test_a_refused_digest_ends_failed_with_its_reminders(make_org, api_for, smtp, jobs, today):
    org = make_org()
    api = api_for(org)
    _ok(api.put(f"/notification-preferences/{BOSS}", json={"frequency": "daily", "hour": 0}))
    plan = {"stages": [{"offset_days": -30, "recipients": [BOSS], "channels": ["email"]}]}
    cert = _certification(api, "Rigging", plan)
    expiry = today + timedelta(days=200)
    for i in range(2):
        _assign(api, cert, _employee(api, f"W{i}", f"w{i}@example.test")["id"], expiry)
    smtp.refuse = True
    assert Ticks(org, smtp, jobs)(_at(expiry - timedelta(days=1))) == []  # retried, then gave up
    notes = _ok(api.get("/notifications"))["items"]
    assert [n["status"] for n in notes] == ["failed", "failed"]
    assert all(n["last_error"].startswith("digest: ") for n in notes)
    smtp.refuse = False
    assert Ticks(org, smtp, jobs)(_at(expiry, hour=1)) == []  # failed for good: not digested again
