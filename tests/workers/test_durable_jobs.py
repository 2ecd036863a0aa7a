"""Durable background work: failed jobs retried for hours with backoff, then `dead` and visible;
a message whose worker died is reclaimed once its lease runs out; a live heartbeat keeps it;
a message Redis lost is sent again. Time is driven by passing `now` to the sweep."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import dramatiq
import pytest
from dramatiq import Message
from dramatiq.middleware import SkipMessage
from sqlalchemy import select, update

from infra import context
from infra import database as db
from jobs import relay
from jobs.models import Job, OutboxMessage
from jobs.outbox import request_job
from workers import lease
from workers.middleware import TenantMiddleware


def _row(job_id: uuid.UUID) -> OutboxMessage:
    with context.platform(), db.new_session() as s:
        return s.scalars(select(OutboxMessage).where(OutboxMessage.job_id == job_id)).one()


def _job(as_tenant, org, job_id) -> Job:
    with as_tenant(org.id) as s:
        return s.get(Job, job_id)


def _request(as_tenant, org, actor: str, marker: str = "m") -> uuid.UUID:
    with as_tenant(org.id) as s:
        job = request_job(s, actor, job_kind="ping", marker=marker)
        s.commit()
    return job.id


def _set_row(row_id: uuid.UUID, **values) -> None:
    with context.platform(), db.new_session() as s:
        s.execute(update(OutboxMessage).where(OutboxMessage.id == row_id).values(**values))
        s.commit()


def _sent_only(row_id: uuid.UUID, now) -> int:
    """Sweep at `now`: how many messages of this row it published (other rows not counted)."""
    broker = dramatiq.get_broker()
    publish = broker.enqueue
    sent: list[str] = []
    patched = "enqueue" in vars(broker)

    def recording(message, **kw):
        sent.append(message.options.get("outbox_id"))
        return publish(message, **kw)

    broker.enqueue = recording  # type: ignore[method-assign]
    try:
        relay.sweep(now=now)
    finally:
        if patched:
            broker.enqueue = publish  # type: ignore[method-assign]
        else:
            del broker.enqueue
    return sent.count(str(row_id))


def test_policy_doubles_from_a_minute_up_to_an_hour():
    policy = relay.RetryPolicy()
    minutes = [policy.delay(n).total_seconds() / 60 for n in range(1, 10)]
    assert minutes == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert policy.delay(10_000) == timedelta(hours=1)


def test_failed_job_is_retried_with_backoff_then_dead_and_visible(org, as_tenant, jobs):
    job_id = _request(as_tenant, org, "failing_ping", "boom")
    jobs.drain()
    row = _row(job_id)
    assert (row.status, row.failures) == ("failed", 1)
    first = row.first_failed_at
    assert row.retry_at - first == pytest.approx(timedelta(minutes=1), abs=timedelta(seconds=5))
    job = _job(as_tenant, org, job_id)
    assert job.state == "queued", "a job that will run again is not `failed`"
    assert "failing on purpose" in job.error

    # Before its delay the sweep leaves it; after, it sends it again (and it fails again).
    assert _sent_only(row.id, first + timedelta(seconds=30)) == 0
    assert _sent_only(row.id, first + timedelta(seconds=61)) == 1
    jobs.drain()
    row = _row(job_id)
    assert (row.status, row.failures, row.first_failed_at) == ("failed", 2, first)
    # the delay doubles (counted from the second failure, which happened just now)
    assert row.retry_at - db.utcnow() == pytest.approx(
        timedelta(minutes=2), abs=timedelta(seconds=10)
    )

    # Past the window after the first failure: dead, not sent, and the job says why.
    assert _sent_only(row.id, first + timedelta(hours=24, seconds=1)) == 0
    row = _row(job_id)
    assert row.status == "dead"
    job = _job(as_tenant, org, job_id)
    assert job.state == "failed"
    assert "gave up after 2 failed runs" in job.error
    assert "failing on purpose" in job.error
    assert relay.counts()["dead"] >= 1
    # ... and the sweep never touches it again
    assert _sent_only(row.id, first + timedelta(days=3)) == 0


def test_dead_row_is_counted_in_the_metrics(org, as_tenant, jobs):
    from api.metrics import read_gauges

    job_id = _request(as_tenant, org, "failing_ping", "metrics")
    # Let the run finish first: a worker still holding the message records its failure on the
    # row after this test marks it dead, and the count would not move.
    jobs.drain()
    before = dict((lbl, v) for g, lbl, v in read_gauges() if g == "outbox_rows")
    assert set(before) == {"pending", "sent", "failed", "dead"}
    _set_row(_row(job_id).id, status="dead")
    after = dict((lbl, v) for g, lbl, v in read_gauges() if g == "outbox_rows")
    assert after["dead"] == before["dead"] + 1


def test_requeue_sends_a_dead_row_again_with_a_fresh_window(org, as_tenant, jobs):
    job_id = _request(as_tenant, org, "record_ping", "again")
    row_id = _row(job_id).id
    jobs.drain()
    with as_tenant(org.id) as s:  # pretend it had died: row dead, job failed
        s.execute(update(Job).where(Job.id == job_id).values(state="failed", error="x"))
        s.commit()
    _set_row(row_id, status="dead", failures=9, first_failed_at=db.utcnow() - timedelta(days=1))
    assert relay.requeue([row_id]) == 1
    row = _row(job_id)
    assert (row.status, row.failures, row.first_failed_at) == ("pending", 0, None)
    assert _job(as_tenant, org, job_id).state == "queued"
    assert _sent_only(row_id, db.utcnow()) == 1
    jobs.drain()
    assert _job(as_tenant, org, job_id).state == "done"


def _leased(as_tenant, org, *, expires_in: timedelta) -> tuple[uuid.UUID, uuid.UUID]:
    """A `record_ping` row sent long ago and claimed by a worker (its lease as given)."""
    with as_tenant(org.id) as s:
        job = Job(kind="ping", state="running")
        s.add(job)
        s.commit()
        job_id = job.id
    with context.platform(), db.new_session() as s:
        row = OutboxMessage(
            org_id=org.id,
            actor_name="record_ping",
            payload={"org_id": str(org.id), "job_id": str(job_id), "marker": "reclaimed"},
            job_id=job_id,
            status="sent",
            attempts=1,
            sent_at=db.utcnow() - timedelta(minutes=1),
            lease_expires_at=db.utcnow() + expires_in,
            claimed_by="a-worker-that-died",
        )
        s.add(row)
        s.commit()
        return row.id, job_id


def test_expired_lease_is_reclaimed_by_the_sweep(org, as_tenant, jobs):
    row_id, job_id = _leased(as_tenant, org, expires_in=timedelta(seconds=-1))
    assert _sent_only(row_id, db.utcnow()) == 1
    jobs.drain()
    assert _job(as_tenant, org, job_id).state == "done"
    assert _row(job_id).status == "done"


def test_live_lease_is_left_alone_and_kept_by_the_heartbeat(org, as_tenant):
    row_id, _job_id = _leased(as_tenant, org, expires_in=timedelta(seconds=20))
    assert _sent_only(row_id, db.utcnow()) == 0
    # 25 s later the lease would have run out, but its worker's heartbeat renewed it meanwhile.
    heartbeat = lease.Heartbeat()
    heartbeat.hold(row_id)
    try:
        assert heartbeat.beat() == 1
    finally:
        heartbeat.drop(row_id)
    assert _sent_only(row_id, db.utcnow() + timedelta(seconds=25)) == 0
    # Without further beats it runs out and the sweep takes the message back (the lease is
    # really made to run out: a worker would skip a delivery while it is live).
    _set_row(row_id, lease_expires_at=db.utcnow() - timedelta(seconds=1))
    assert _sent_only(row_id, db.utcnow()) == 1


def _delivery(row_id: uuid.UUID, org, message_id: str | None = None) -> Message:
    message = Message(
        queue_name="default",
        actor_name="record_ping",
        args=(),
        kwargs={"org_id": str(org.id)},
        options={"outbox_id": str(row_id)},
    )
    return message.copy(message_id=message_id) if message_id else message


def test_duplicate_deliveries_are_skipped(org, as_tenant, runtime):
    """A second delivery while a live lease holds the row, or after it is done, does nothing."""
    row_id, _job_id = _leased(as_tenant, org, expires_in=timedelta(seconds=20))
    middleware = TenantMiddleware()
    with pytest.raises(SkipMessage):
        middleware.before_process_message(runtime.broker, _delivery(row_id, org))
    middleware.after_skip_message(runtime.broker, _delivery(row_id, org))
    # The holder's own retry (same message id) may claim it again.
    own = _delivery(row_id, org, message_id="a-worker-that-died")
    middleware.before_process_message(runtime.broker, own)
    middleware.after_process_message(runtime.broker, own, result=None)
    assert _row(_job_id).status == "done"
    with pytest.raises(SkipMessage):
        middleware.before_process_message(runtime.broker, _delivery(row_id, org))
    middleware.after_skip_message(runtime.broker, _delivery(row_id, org))


def test_message_lost_with_redis_data_is_sent_again_at_once(org, as_tenant, monkeypatch):
    """A `sent` row published into an earlier life of Redis (another epoch) is re-sent by the
    next sweep, not after RESEND_AFTER; one of the current epoch is left alone."""
    row_id, job_id = _leased(as_tenant, org, expires_in=timedelta(seconds=20))
    _set_row(row_id, lease_expires_at=None, claimed_by=None, broker_epoch="before-the-crash")
    monkeypatch.setattr(relay, "broker_epoch", lambda _broker: "before-the-crash")
    assert _sent_only(row_id, db.utcnow()) == 0
    monkeypatch.setattr(relay, "broker_epoch", lambda _broker: "after-the-crash")
    assert _sent_only(row_id, db.utcnow()) == 1
    row = _row(job_id)  # (a fast in-process worker may have finished it already)
    assert row.status == "done" or row.broker_epoch == "after-the-crash"
    assert _sent_only(row_id, db.utcnow()) == 0


def test_failed_run_of_a_relayed_job_goes_back_to_queued(org, as_tenant):
    """Inside a relayed message a failure is temporary; called directly it is final."""
    from tests.support.actors import failing_ping

    with as_tenant(org.id) as s:
        job = Job(kind="ping")
        s.add(job)
        s.commit()
    lease.set_current(uuid.uuid4())
    try:
        with context.tenant(org.id), pytest.raises(RuntimeError):
            failing_ping(str(org.id), str(job.id), "relayed")
    finally:
        lease.set_current(None)
    assert (_job(as_tenant, org, job.id).state) == "queued"
    with context.tenant(org.id), pytest.raises(RuntimeError):
        failing_ping(str(org.id), str(job.id), "direct")
    assert (_job(as_tenant, org, job.id).state) == "failed"


def test_operators_list_and_requeue_dead_jobs_from_the_cli(org, as_tenant, runtime, monkeypatch):
    from click.testing import CliRunner

    from cli.main import main as cli
    from tests.support.suite import CLI_ENV

    # Not published: a worker thread of the session would run it and record its own failure
    # over the `dead` this test sets (it raced in CI).
    monkeypatch.setattr(runtime.broker, "enqueue", lambda message, **_kw: message)
    job_id = _request(as_tenant, org, "failing_ping", "cli")
    if runtime.publisher is not None:
        assert runtime.publisher.flush(timeout=30)
    row_id = _row(job_id).id
    _set_row(row_id, status="dead", failures=3, last_error="RuntimeError('cli')")
    listed = CliRunner().invoke(cli, ["jobs", "list", "--limit", "1000"], env=CLI_ENV)
    assert listed.exit_code == 0, listed.output
    lines = [json.loads(line) for line in listed.output.splitlines() if line.startswith("{")]
    mine = [line for line in lines if line.get("id") == str(row_id) and "actor_name" in line]
    assert mine
    assert mine[0]["actor_name"] == "failing_ping"
    assert mine[0]["last_error"] == "RuntimeError('cli')"

    done = CliRunner().invoke(cli, ["jobs", "requeue", "--id", str(row_id)], env=CLI_ENV)
    assert done.exit_code == 0, done.output
    assert json.loads(done.output.splitlines()[-1]) == {"requeued": 1}
    assert _row(job_id).status == "pending"
    _set_row(row_id, status="dead")  # keep later drains from running it

    bad = CliRunner().invoke(cli, ["jobs", "requeue", "--id", "nope"], env=CLI_ENV)
    assert bad.exit_code == 2


def test_retry_and_lease_settings():
    from infra.settings import ConfigError, load_settings

    policy = relay.RetryPolicy.from_settings(
        load_settings({"JOB_RETRY_BASE_SECONDS": "10", "JOB_LEASE_SECONDS": "9"})
    )
    assert policy == relay.RetryPolicy(
        base=timedelta(seconds=10),
        cap=timedelta(hours=1),
        window=timedelta(hours=24),
        lease=timedelta(seconds=9),
    )
    for bad in ({"JOB_LEASE_SECONDS": "1"}, {"JOB_RETRY_MAX_SECONDS": "5"}):
        with pytest.raises(ConfigError):
            load_settings(bad)
