"""The per-org tick: statuses in the org's time zone, the scheduler's due-org claims,
leadership, `certs tick`, and the jobs through the outbox and a worker."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from certifications.assignments import schedule
from certifications.assignments.models import Assignment, StatusEvent
from certifications.assignments.schedule import RecomputeState
from certifications.assignments.status import add_months
from certifications.catalog.models import Certification
from cli.main import main as cli
from infra import context
from infra import database as db
from jobs import relay as outbox
from jobs.models import Job, OutboxMessage
from jobs.outbox import request_job
from tenancy.organizations import org_today
from tests.support.suite import CLI_ENV
from workers import scheduler
from workers.scheduler import Leadership, run_periodic
from workers.tick import queue_due_ticks, tick_now


@pytest.fixture
def recorded(make_certification, make_employee, make_assignment):
    """`recorded(org, expires_on=d, **certification)`: (certification id, assignment id) of a
    valid record issued a year before `d`."""

    def build(org, *, expires_on: date, **cert_kw):
        cert = make_certification(org, **cert_kw)
        issued = expires_on - timedelta(days=365)
        a = make_assignment(cert, make_employee(org), issued_on=issued, expires_on=expires_on)
        return cert.id, a.id

    return build


def _status(as_tenant, org, assignment_id):
    with as_tenant(org.id) as s:
        return s.get(Assignment, assignment_id).status


def _state(org_id: uuid.UUID) -> RecomputeState | None:
    with context.platform(), db.new_session() as s:
        return s.get(RecomputeState, org_id)


def _queued(org_id: uuid.UUID) -> int:
    with context.tenant(org_id), db.new_session() as s:
        return len(
            s.scalars(
                select(OutboxMessage.id).where(
                    OutboxMessage.org_id == org_id, OutboxMessage.actor_name == "tick_org"
                )
            ).all()
        )


def _changed(now: datetime, org_id: uuid.UUID) -> int:
    report = tick_now(now, org_id)
    assert report["orgs"] == 1
    return int(report["ticks"][str(org_id)]["changed"])


def test_tick_recomputes_now_in_the_org_timezone(make_org, as_tenant, recorded):
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)  # Auckland: the 30th; LA: the 29th
    nz = make_org(timezone="Pacific/Auckland")
    la = make_org(timezone="America/Los_Angeles")
    _, nz_a = recorded(nz, expires_on=date(2026, 11, 29))
    _, la_a = recorded(la, expires_on=date(2026, 11, 29))
    assert _changed(now, nz.id) == 1
    assert _changed(now, la.id) == 1
    assert _status(as_tenant, nz, nz_a) == "expired"
    assert _status(as_tenant, la, la_a) == "expires_soon"
    assert _changed(now, nz.id) == 0  # idempotent
    state = _state(nz.id)
    assert state is not None
    assert (state.local_date, state.changed, state.done_at) == (date(2026, 11, 30), 0, now)


def test_scheduler_claims_each_due_org_once(make_org, as_tenant, recorded, monkeypatch):
    # Keep the queued jobs in the outbox: a worker left running by an earlier test would
    # otherwise run tick_org at the real "now" and move the state row under our feet.
    monkeypatch.setattr(outbox, "relay", lambda ids, **_kw: 0)
    org = make_org(timezone="Pacific/Auckland")
    recorded(org, expires_on=date(2026, 11, 29))
    t0 = datetime(2026, 11, 29, 10, 40, tzinfo=UTC)  # 23:40 local on the 29th
    assert org_today("Pacific/Auckland", t0) == date(2026, 11, 29)
    assert queue_due_ticks(t0, org.id) == {"due": 1, "queued": 1}  # never ticked
    assert queue_due_ticks(t0, org.id) == {"due": 0, "queued": 0}
    assert queue_due_ticks(t0 + timedelta(minutes=10), org.id)["queued"] == 0
    # Local midnight passed (00:05 on the 30th): due again at once, not in an hour.
    assert queue_due_ticks(t0 + timedelta(minutes=25), org.id) == {"due": 1, "queued": 1}
    assert queue_due_ticks(t0 + timedelta(minutes=30), org.id)["queued"] == 0
    # At least hourly.
    assert queue_due_ticks(t0 + timedelta(minutes=85), org.id)["queued"] == 1
    assert _queued(org.id) == 3
    state = _state(org.id)
    assert state is not None
    assert (state.version, state.done_at) == (3, None)


def test_claim_is_compare_and_set(make_org):
    org = make_org()
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    today = date(2026, 11, 29)
    with context.tenant(org.id), db.new_session() as s:
        assert schedule.claim(s, org.id, today, now, None) is True
        assert schedule.claim(s, org.id, today, now, None) is False  # row exists already
        assert schedule.claim(s, org.id, today, now, 1) is True
        assert schedule.claim(s, org.id, today, now, 1) is False  # a stale claimer loses
        s.commit()
    # Planned by two schedulers from the same snapshot: only one enqueues.
    later = now + timedelta(hours=2)
    with context.platform(), db.new_session() as s:
        due = schedule.due_orgs(s, later, org.id)
    assert due == [(org.id, today, 2)]
    with context.tenant(org.id), db.new_session() as s:
        wins = [schedule.claim(s, org.id, today, later, 2) for _ in range(2)]
        s.commit()
    assert wins == [True, False]


def test_run_periodic_queues_ticks_only_when_leading(monkeypatch):
    seen: list[int] = []

    def fake_queue() -> dict[str, int]:
        seen.append(1)
        return {"due": 0, "queued": 0}

    monkeypatch.setattr(scheduler, "queue_due_ticks", fake_queue)

    class Standby(Leadership):
        def acquire(self) -> bool:
            return False

    assert run_periodic(Standby()) is None
    assert seen == []
    assert run_periodic(Leadership()) == {"due": 0, "queued": 0}
    assert seen == [1]


@pytest.mark.postgres
def test_only_one_scheduler_leads_and_a_standby_takes_over():
    key = int(uuid.uuid4().int % (1 << 62))
    first, second = Leadership(key), Leadership(key)
    try:
        assert first.acquire() is True
        assert first.acquire() is True  # keeps it
        assert second.acquire() is False
        first.release()  # the leader stops (or its connection dies)
        assert second.acquire() is True
        assert first.acquire() is False
    finally:
        first.release()
        second.release()


def test_certs_tick_prints_a_json_report(make_org, as_tenant, recorded, jobs):
    org = make_org()
    _, a = recorded(org, expires_on=date(2000, 1, 1))
    result = CliRunner(env=CLI_ENV).invoke(cli, ["tick", "--org", str(org.id), "--timeout", "30"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["tick"]["orgs"] == 1
    assert report["tick"]["ticks"][str(org.id)]["changed"] == 1
    assert report["queued_work"]["waiting"] == 0
    assert _status(as_tenant, org, a) == "expired"
    bad = CliRunner(env=CLI_ENV).invoke(cli, ["tick", "--org", "nope"])
    assert bad.exit_code == 2
    assert "--org" in bad.output


def test_recompute_actors_through_the_outbox_and_a_worker(make_org, as_tenant, recorded, jobs):
    org = make_org()
    today = org_today("UTC", db.utcnow())
    cert_id, a = recorded(
        org, expires_on=today + timedelta(days=20), warning_days=10, validity_months=12
    )
    # The catalog changed warning_days and validity: it requests recompute_certification.
    with as_tenant(org.id) as s:
        cert = s.get(Certification, cert_id)
        cert.warning_days = 30
        cert.validity_months = 1
        assignment = s.get(Assignment, a)
        assignment.effective_on = today - timedelta(days=20)
        job = request_job(
            s,
            "recompute_certification",
            job_kind="recompute",
            certification_id=cert_id,
            apply_to_current=True,  # move recorded expiries too (by default they stay)
        )
        s.commit()
        job_id = job.id
    jobs.drain()
    with as_tenant(org.id) as s:
        got = s.get(Assignment, a)
        # 1 month after effective_on, computed (not explicit): now inside the window.
        assert got.expires_on == add_months(today - timedelta(days=20), 1)
        assert got.status == "expires_soon"
        j = s.get(Job, job_id)
        assert (j.state, j.done, j.total) == ("done", 1, 1)
        assert j.result == {"expiries": 1, "changed": 1}
    # The org's tick as a job; running it again changes nothing.
    for _ in range(2):
        with as_tenant(org.id) as s:
            job = request_job(s, "tick_org", job_kind="tick")
            s.commit()
            job_id = job.id
        jobs.drain()
        with as_tenant(org.id) as s:
            j = s.get(Job, job_id)
            assert (j.state, j.result["changed"], j.done, j.total) == ("done", 0, 1, 1)
            assert (
                len(s.scalars(select(StatusEvent).where(StatusEvent.assignment_id == a)).all()) == 1
            )


def _run_one_job_through_apscheduler() -> None:
    from apscheduler.schedulers.background import BackgroundScheduler

    aps = BackgroundScheduler()
    aps.add_job(lambda: None, "date", run_date=datetime.now(UTC), id="probe")
    aps.start()
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while aps.get_jobs() and datetime.now(UTC) < deadline:
        time.sleep(0.01)
    aps.shutdown(wait=True)  # the executor's "executed successfully" line is written by now


def test_apscheduler_per_run_lines_are_debug(caplog):
    scheduler.build_scheduler(background=True)  # installs the filter; not started

    caplog.set_level("INFO")
    _run_one_job_through_apscheduler()
    runs = [r for r in caplog.records if r.name == scheduler.APSCHEDULER_RUN_LOGGER]
    assert runs == []

    caplog.clear()
    caplog.set_level("DEBUG")
    _run_one_job_through_apscheduler()
    runs = [r for r in caplog.records if r.name == scheduler.APSCHEDULER_RUN_LOGGER]
    assert {r.levelname for r in runs} == {"DEBUG"}
    assert any("executed successfully" in r.getMessage() for r in runs)
