"""Scheduled reports through the HTTP API: validation, the keyset list, PATCH/DELETE, and runs
driven by the org's tick at pinned instants, emailed by the worker to the real SMTP sink with
the file attached - once per run, however many ticks; the report never carries another org's
rows."""

from __future__ import annotations

import io
import threading
import uuid
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from certifications.assignments import schedule as tick_schedule
from certifications.reporting.models import ReportRun, ReportSchedule
from certifications.reporting.runs import collect_report_runs, due_since
from infra import context
from infra import database as db
from infra.database import utcnow
from jobs.models import OutboxMessage
from tenancy.models import Organization
from tests.support.suite import SETTINGS
from workers.delivery import deliver_report
from workers.tick import tick_now
from workers.unit_of_work import job_run

PARIS = "Europe/Paris"
HSE = "hse@example.test"


def _ok(resp, status=200):
    assert resp.status_code == status, resp.get_data(as_text=True)
    return resp.get_json()


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def _next_local(now: datetime, weekday: int, hour: int, zone: str) -> datetime:
    """The first `weekday` at `hour`:00 in `zone` strictly after `now` (counted by hand)."""
    tz = ZoneInfo(zone)
    day = now.astimezone(tz).date()
    while True:
        candidate = datetime.combine(day, time(hour), tzinfo=tz)
        if candidate.weekday() == weekday and candidate > now:
            return candidate.astimezone(UTC)
        day += timedelta(days=1)


def _site(api, name: str) -> dict:
    """A job location holding a location certification (valid, expiring next year)."""
    location = _ok(api.post("/locations", json={"name": name}), 201)
    cert = _ok(
        api.post(
            "/certifications",
            json={"name": f"{name} permit", "type": "location", "validity": {"months": 12}},
        ),
        201,
    )
    today = utcnow().date()
    _ok(
        api.post(
            "/assignments",
            json={
                "certification_id": cert["id"],
                "subject_type": "location",
                "subject_id": location["id"],
                "issued_on": (today - timedelta(days=30)).isoformat(),
                "expires_on": (today + timedelta(days=300)).isoformat(),
            },
        ),
        201,
    )
    return location


def _schedule(api, **body) -> dict:
    return _ok(api.post("/reports/schedules", json=body), 201)


def _pack_body(location_id: str, **extra) -> dict:
    return {
        "kind": "audit-pack",
        "scope": {"location_id": location_id},
        "cron": "0 7 * * 1",
        "recipients": [HSE],
        **extra,
    }


def _runs(org_id) -> list[ReportRun]:
    with context.tenant(org_id), db.new_session() as s:
        return list(s.scalars(select(ReportRun).order_by(ReportRun.scheduled_for)))


def _pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages)


def _attachments(mail) -> list:
    return list(mail.message.iter_attachments())


@pytest.fixture
def paris_org(make_org):
    return make_org(name="Acme Paris", timezone=PARIS)


# --- the schedule resource ------------------------------------------------------------------------


def test_create_answers_the_next_run_in_the_org_time_zone(paris_org, api_for):
    api = api_for(paris_org)
    site = _site(api, "North Site")
    before = utcnow()
    created = _schedule(api, **_pack_body(site["id"]))
    assert created["kind"] == "audit-pack"
    assert created["format"] == "pdf"
    assert created["scope"] == {"location_id": site["id"], "client_id": None, "group_id": None}
    assert created["timezone"] == PARIS
    assert created["recipients"] == [HSE]
    assert created["enabled"] is True
    assert created["last_run_at"] is None
    assert created["last_run_status"] is None
    # Monday 07:00 in Paris: 06:00 UTC in winter, 05:00 UTC in summer.
    expected = _next_local(before, 0, 7, PARIS)
    assert _at(created["next_run_at"]) == expected
    assert _ok(api.get(f"/reports/schedules/{created['id']}")) == created


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cron": "61 7 * * 1"}, "cron"),
        ({"cron": "0 7 * *"}, "cron"),
        ({"cron": "0 7 * * 1 2026"}, "cron"),
        ({"cron": "* * * * *"}, "cron"),  # every minute: more often than hourly
        ({"cron": "0 0 31 2 *"}, "cron"),  # never matches
        ({"cron": "not a cron"}, "cron"),
        ({"recipients": []}, "recipients"),
        ({"recipients": ["not-an-email"]}, "recipients"),
        ({"recipients": [f"p{i}@example.test" for i in range(21)]}, "recipients"),
        ({"format": "csv"}, "format"),  # an audit pack is a PDF or a workbook
        ({"kind": "weekly"}, "kind"),
        ({"scope": {}}, "scope"),  # an audit pack needs a scope
        ({"scope": {"location_id": None, "shoe_size": 3}}, "scope"),
    ],
)
def test_bad_input_is_422_naming_the_field_and_writes_nothing(paris_org, api_for, body, field):
    api = api_for(paris_org)
    site = _site(api, "North Site")
    resp = api.post("/reports/schedules", json=_pack_body(site["id"]) | body)
    assert resp.status_code == 422, resp.get_data(as_text=True)
    assert field in resp.get_json()["errors"]["json"], resp.get_json()
    assert _ok(api.get("/reports/schedules"))["items"] == []


def test_two_scopes_and_a_summary_as_pdf_are_refused(paris_org, api_for, make_client):
    api = api_for(paris_org)
    site = _site(api, "North Site")
    client = make_client(paris_org, name="Acme Client")
    both = {"location_id": site["id"], "client_id": str(client.id)}
    resp = api.post("/reports/schedules", json=_pack_body(site["id"], scope=both))
    assert resp.status_code == 422
    assert "scope" in resp.get_json()["errors"]["json"]
    pdf_summary = {"kind": "summary", "format": "pdf", "cron": "0 8 1 * *", "recipients": [HSE]}
    resp = api.post("/reports/schedules", json=pdf_summary)
    assert resp.status_code == 422
    assert "format" in resp.get_json()["errors"]["json"]
    summary = _schedule(api, kind="summary", cron="@monthly", recipients=[HSE, HSE.upper()])
    assert summary["format"] == "csv"
    assert summary["cron"] == "0 0 1 * *"
    assert summary["scope"] == {"location_id": None, "client_id": None, "group_id": None}
    assert summary["recipients"] == [HSE]  # the same address twice is one recipient


def test_another_orgs_scope_is_refused_like_an_unknown_one_and_nothing_is_written(
    paris_org, make_org, api_for
):
    api, other = api_for(paris_org), api_for(make_org(name="Other org"))
    theirs = _site(other, "Their Site")
    answers = []
    for location_id in (theirs["id"], str(uuid.uuid4())):
        resp = api.post("/reports/schedules", json=_pack_body(location_id))
        assert resp.status_code == 422
        answers.append(resp.get_json())
    assert answers[0] == answers[1]  # no existence leak
    assert answers[0]["errors"]["json"]["scope"] == {
        "location_id": ["No such location in this organization."]
    }
    assert _ok(api.get("/reports/schedules"))["items"] == []
    mine = _schedule(api, **_pack_body(_site(api, "Mine")["id"]))
    resp = api.patch(
        f"/reports/schedules/{mine['id']}", json={"scope": {"location_id": theirs["id"]}}
    )
    assert resp.status_code == 422
    assert _ok(api.get(f"/reports/schedules/{mine['id']}")) == mine


def test_list_is_a_keyset_page_filtered_by_kind(paris_org, api_for):
    api = api_for(paris_org)
    site = _site(api, "North Site")
    made = [_schedule(api, **_pack_body(site["id"])) for _ in range(3)]
    made.append(_schedule(api, kind="summary", cron="0 8 * * *", recipients=[HSE]))
    first = _ok(api.get("/reports/schedules", query_string={"limit": 2}))
    assert len(first["items"]) == 2
    assert first["next_cursor"]
    rest = _ok(
        api.get("/reports/schedules", query_string={"limit": 2, "cursor": first["next_cursor"]})
    )
    assert rest["next_cursor"] is None
    assert [s["id"] for s in first["items"] + rest["items"]] == [s["id"] for s in made]
    packs = _ok(api.get("/reports/schedules", query_string={"kind": "audit-pack"}))["items"]
    assert [s["id"] for s in packs] == [s["id"] for s in made[:3]]
    resp = api.get("/reports/schedules", query_string={"cursor": "garbage"})
    assert resp.status_code == 422


def test_patch_recomputes_the_next_run_pauses_and_changes_kind(paris_org, api_for):
    api = api_for(paris_org)
    site = _site(api, "North Site")
    created = _schedule(api, **_pack_body(site["id"], format="xlsx"))
    path = f"/reports/schedules/{created['id']}"
    before = utcnow()
    moved = _ok(api.patch(path, json={"cron": "0 9 * * 3"}))  # Wednesdays 09:00 in Paris
    assert _at(moved["next_run_at"]) == _next_local(before, 2, 9, PARIS)
    assert moved["format"] == "xlsx"
    paused = _ok(api.patch(path, json={"enabled": False}))
    assert paused["enabled"] is False
    assert paused["next_run_at"] is None
    resumed = _ok(api.patch(path, json={"enabled": True}))
    assert resumed["next_run_at"] == moved["next_run_at"]
    # A summary cannot be a workbook: the kind's default format (CSV) replaces it.
    summary = _ok(api.patch(path, json={"kind": "summary"}))
    assert summary["format"] == "csv"
    assert summary["scope"]["location_id"] == site["id"]
    bad = api.patch(path, json={"cron": "*/5 * * * *"})
    assert bad.status_code == 422
    assert "cron" in bad.get_json()["errors"]["json"]
    assert _ok(api.get(path)) == summary


def test_org_time_zone_change_moves_the_next_run(paris_org, api_for):
    api = api_for(paris_org)
    site = _site(api, "North Site")
    created = _schedule(api, **_pack_body(site["id"]))
    admin = api_for(paris_org, scopes=["org:admin"])
    before = utcnow()
    _ok(admin.patch("/org", json={"timezone": "America/New_York"}))
    after = _ok(api.get(f"/reports/schedules/{created['id']}"))
    assert after["timezone"] == "America/New_York"
    assert _at(after["next_run_at"]) == _next_local(before, 0, 7, "America/New_York")


def test_delete_removes_the_schedule_and_its_runs(paris_org, api_for, smtp, jobs):
    api = api_for(paris_org)
    created = _schedule(api, **_pack_body(_site(api, "North Site")["id"]))
    due = _at(created["next_run_at"])
    tick_now(now=due + timedelta(minutes=1), org_id=paris_org.id)
    jobs.drain()
    assert len(_runs(paris_org.id)) == 1
    assert api.delete(f"/reports/schedules/{created['id']}").status_code == 204
    assert api.get(f"/reports/schedules/{created['id']}").status_code == 404
    assert _runs(paris_org.id) == []


# --- runs: once per occurrence, emailed with the file ------------------------------------------


def test_a_due_schedule_sends_exactly_one_email_with_the_pdf_across_ticks(
    paris_org, make_org, api_for, smtp, jobs
):
    api = api_for(paris_org)
    site = _site(api, "North Site")
    other = api_for(make_org(name="Other org"))
    _site(other, "Foreign Yard")  # another org's site: never in this org's pack
    created = _schedule(api, **_pack_body(site["id"], recipients=[HSE, "boss@example.test"]))
    due = _at(created["next_run_at"])
    jobs.drain()
    tick_now(now=due - timedelta(minutes=1), org_id=paris_org.id)  # not yet
    jobs.drain()
    assert smtp.messages == []
    for late in (1, 2, 30):  # the tick that finds it due, then two more in the same period
        tick_now(now=due + timedelta(minutes=late), org_id=paris_org.id)
    jobs.drain()
    assert len(smtp.messages) == 1
    mail = smtp.messages[0]
    assert sorted(mail.rcpt_tos) == sorted([HSE, "boss@example.test"])
    assert "Audit pack" in mail.message["Subject"]
    assert "North Site" in mail.message["Subject"]
    (attached,) = _attachments(mail)
    assert attached.get_content_type() == "application/pdf"
    assert attached.get_filename().endswith(".pdf")
    text = _pdf_text(attached.get_content())
    assert "North Site" in text
    assert "Acme Paris" in text
    assert "Foreign Yard" not in text
    assert "Other org" not in text
    # A redelivery of the same run (a duplicate message) sends nothing more.
    (run,) = _runs(paris_org.id)
    assert run.status == "sent"
    assert run.scheduled_for == due
    assert deliver_report(paris_org.id, run.id, settings=SETTINGS).state == "skipped"
    assert len(smtp.messages) == 1
    shown = _ok(api.get(f"/reports/schedules/{created['id']}"))
    assert shown["last_run_status"] == "sent"
    assert _at(shown["last_run_at"]) == due + timedelta(minutes=1)
    assert _at(shown["next_run_at"]) == due + timedelta(days=7)  # same wall clock, next week


def test_missed_runs_make_one_run_for_the_latest_occurrence(paris_org, api_for, smtp, jobs):
    api = api_for(paris_org)
    created = _schedule(
        api, **_pack_body(_site(api, "North Site")["id"], format="xlsx", recipients=[HSE])
    )
    due = _at(created["next_run_at"])
    jobs.drain()
    # No tick for three weeks (the worker was down): one run, for the latest Monday missed.
    now = due + timedelta(days=15)
    tick_now(now=now, org_id=paris_org.id)
    tick_now(now=now + timedelta(minutes=5), org_id=paris_org.id)
    jobs.drain()
    (run,) = _runs(paris_org.id)
    assert run.scheduled_for == due + timedelta(days=14)
    (mail,) = smtp.to(HSE)
    (attached,) = _attachments(mail)
    assert attached.get_filename().endswith(".xlsx")
    assert attached.get_content()[:2] == b"PK"  # a zip container: the workbook
    shown = _ok(api.get(f"/reports/schedules/{created['id']}"))
    assert _at(shown["next_run_at"]) == due + timedelta(days=21)


def test_org_wide_summary_is_a_csv_of_this_org_only(paris_org, make_org, api_for, smtp, jobs):
    api = api_for(paris_org)
    _site(api, "North Site")
    other = api_for(make_org(name="Other org"))
    _site(other, "Foreign Yard")
    created = _schedule(api, kind="summary", cron="0 8 * * *", recipients=[HSE])
    due = _at(created["next_run_at"])
    jobs.drain()
    tick_now(now=due + timedelta(minutes=3), org_id=paris_org.id)
    jobs.drain()
    (mail,) = smtp.to(HSE)
    (attached,) = _attachments(mail)
    assert attached.get_content_type() == "text/csv"
    lines = attached.get_content().splitlines()
    assert lines[0].startswith("scope,certification,valid,")
    assert any(line.startswith("Acme Paris,North Site permit,1,") for line in lines)
    assert lines[-1].startswith("Acme Paris,Total,1,")
    assert "Foreign Yard" not in attached.get_content()


def test_a_paused_schedule_never_runs(paris_org, api_for, smtp, jobs):
    api = api_for(paris_org)
    created = _schedule(api, **_pack_body(_site(api, "North Site")["id"]))
    due = _at(created["next_run_at"])
    _ok(api.patch(f"/reports/schedules/{created['id']}", json={"enabled": False}))
    jobs.drain()
    tick_now(now=due + timedelta(minutes=1), org_id=paris_org.id)
    jobs.drain()
    assert _runs(paris_org.id) == []
    assert smtp.messages == []


def test_the_scheduler_finds_an_org_with_a_schedule_due_since_its_last_tick(
    paris_org, api_for, jobs
):
    """Within the hour since its last tick, an org is due again for a schedule that fell due
    since; once a tick is claimed after that, not again."""
    api = api_for(paris_org)
    created = _schedule(api, **_pack_body(_site(api, "North Site")["id"]))
    due = _at(created["next_run_at"])
    jobs.drain()  # the ticks the API writes asked for (real clock) are done before we pin

    def tick_claimed_at(at: datetime) -> None:
        with job_run(paris_org.id) as run:
            today = at.astimezone(ZoneInfo(PARIS)).date()
            tick_schedule.mark_recomputed(run.session, paris_org.id, today, at, 0)

    def due_at(now: datetime) -> bool:
        with context.platform(), db.new_session() as s:
            waiting = due_since(s, now)
            return bool(tick_schedule.due_orgs(s, now, paris_org.id, waiting=waiting))

    tick_claimed_at(due - timedelta(minutes=10))  # the regular tick, just before
    assert not due_at(due - timedelta(minutes=5))
    assert due_at(due + timedelta(minutes=5))
    tick_claimed_at(due + timedelta(minutes=5))  # the tick the scheduler queued for it
    assert not due_at(due + timedelta(minutes=10))


def test_a_deleted_scope_fails_the_run_for_good(paris_org, api_for, smtp, jobs):
    api = api_for(paris_org)
    site = _site(api, "North Site")
    created = _schedule(api, **_pack_body(site["id"]))
    with context.tenant(paris_org.id), db.new_session() as s:
        row = s.get(ReportSchedule, uuid.UUID(created["id"]))
        assert row is not None
        row.scope_id = uuid.uuid4()  # as if the site were gone
        s.commit()
    jobs.drain()
    tick_now(now=_at(created["next_run_at"]) + timedelta(minutes=1), org_id=paris_org.id)
    jobs.drain()
    (run,) = _runs(paris_org.id)
    assert run.status == "failed"
    assert "location" in (run.last_error or "")
    assert smtp.messages == []
    shown = _ok(api.get(f"/reports/schedules/{created['id']}"))
    assert shown["last_run_status"] == "failed"


def test_report_of_day_is_the_org_local_day(paris_org, api_for, smtp, jobs):
    """A run at 00:30 on a Monday in Paris is still Sunday in UTC: its report is of Monday."""
    api = api_for(paris_org)
    body = _pack_body(_site(api, "North Site")["id"], cron="30 0 * * 1")
    due = _at(_schedule(api, **body)["next_run_at"])
    assert due.astimezone(ZoneInfo(PARIS)).time() == time(0, 30)
    assert due.weekday() == 6  # Sunday, 23:30 or 22:30 UTC
    tick_now(now=due + timedelta(minutes=1), org_id=paris_org.id)
    (run,) = _runs(paris_org.id)
    assert run.as_of == due.date() + timedelta(days=1)
    assert run.as_of.weekday() == 0
    jobs.drain()  # its email goes to the sink here, not to a later test


def test_concurrent_ticks_record_one_run_and_queue_one_delivery(paris_org, api_for, smtp, jobs):
    """Four ticks of the org at once, each in its own transaction: the unique (schedule,
    occurrence) lets one insert the run; one delivery is queued."""
    api = api_for(paris_org)
    created = _schedule(api, **_pack_body(_site(api, "North Site")["id"]))
    now = _at(created["next_run_at"]) + timedelta(minutes=1)
    with context.platform(), db.new_session() as s:
        org = s.get(Organization, paris_org.id)
        assert org is not None
        s.expunge(org)
    barrier = threading.Barrier(4)
    made: list[int] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            barrier.wait(timeout=30)
            with job_run(paris_org.id) as run:
                made.append(collect_report_runs(run.session, org, now))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sum(made) == 1
    assert len(_runs(paris_org.id)) == 1
    with context.platform(), db.new_session() as s:
        queued = s.scalars(
            select(OutboxMessage).where(
                OutboxMessage.org_id == paris_org.id, OutboxMessage.actor_name == "deliver_report"
            )
        ).all()
    assert len(queued) == 1
    jobs.drain()
    assert len(smtp.to(HSE)) == 1
