"""The transactional outbox: jobs run only after commit, and survive a broker outage."""

from __future__ import annotations

import uuid

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker
from sqlalchemy import select

from infra import context
from infra import database as db
from jobs import relay as outbox
from jobs.models import Job, OutboxMessage
from jobs.outbox import request_job
from tests.support.actors import record_ping
from workers.middleware import TenantMiddleware


def _ping(as_tenant, org, marker):
    with as_tenant(org.id) as s:
        job = request_job(s, "record_ping", job_kind="ping", marker=marker)
        s.commit()
    return job


def _relayed(runtime) -> None:
    """Wait for the after-commit relay (a background publisher with Redis) to have run."""
    if runtime.publisher is not None:
        assert runtime.publisher.flush()


def _job(as_tenant, org, job_id):
    with as_tenant(org.id) as s:
        return s.get(Job, job_id)


def test_committed_job_runs_as_its_org(org, as_tenant, jobs):
    job = _ping(as_tenant, org, "hello")
    jobs.drain()
    done = _job(as_tenant, org, job.id)
    assert done.state == "done"
    assert done.result == {"marker": "hello", "org_id": str(org.id)}
    with context.platform(), db.new_session() as s:
        row = s.scalars(select(OutboxMessage).where(OutboxMessage.job_id == job.id)).one()
    assert row.status == "done"
    assert row.done_at is not None


def test_rolled_back_job_never_runs(org, as_tenant, jobs):
    with as_tenant(org.id) as s:
        job = request_job(s, "record_ping", job_kind="ping", marker="ghost")
        job_id = job.id
        s.rollback()
    jobs.drain()
    assert _job(as_tenant, org, job_id) is None
    with context.platform(), db.new_session() as s:
        assert s.scalars(select(OutboxMessage).where(OutboxMessage.job_id == job_id)).all() == []


def test_broker_down_at_commit_then_runs_after(org, as_tenant, jobs, runtime, monkeypatch):
    """A real Redis client pointed at a port nobody listens on stands in for Redis being down."""
    dead = RedisBroker(url="redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    monkeypatch.setattr(runtime.broker, "enqueue", dead.enqueue)
    job = _ping(as_tenant, org, "after outage")  # commit succeeds; relay fails quietly
    _relayed(runtime)
    monkeypatch.undo()
    with context.platform(), db.new_session() as s:
        row = s.scalars(select(OutboxMessage).where(OutboxMessage.job_id == job.id)).one()
    assert row.status == "pending"
    assert "Connection" in (row.last_error or "")
    assert _job(as_tenant, org, job.id).state == "queued"

    # The broker is back: the sweep (run by the scheduler every few seconds) sends it.
    sent = outbox.sweep(now=db.utcnow() + outbox.SWEEP_MIN_AGE)
    assert sent >= 1
    jobs.drain()
    assert _job(as_tenant, org, job.id).state == "done"


def test_sweep_skips_fresh_and_done_rows(org, as_tenant, jobs):
    job = _ping(as_tenant, org, "once")
    jobs.drain()
    with context.platform(), db.new_session() as s:
        before = s.scalars(select(OutboxMessage).where(OutboxMessage.job_id == job.id)).one()
    outbox.sweep()
    with context.platform(), db.new_session() as s:
        after = s.scalars(select(OutboxMessage).where(OutboxMessage.job_id == job.id)).one()
    assert after.status == before.status == "done"
    assert after.attempts == before.attempts


def test_outbox_row_needs_a_live_actor_name(org, as_tenant, runtime):
    with as_tenant(org.id) as s:
        request_job(s, "no_such_actor", marker="x")
        s.commit()
    _relayed(runtime)
    with context.platform(), db.new_session() as s:
        rows = s.scalars(
            select(OutboxMessage).where(OutboxMessage.actor_name == "no_such_actor")
        ).all()
    assert rows
    assert all(r.status == "pending" and "no_such_actor" in r.last_error for r in rows)
    with context.platform(), db.new_session() as s:  # keep later drains from waiting on it
        for r in s.scalars(select(OutboxMessage).where(OutboxMessage.id.in_([r.id for r in rows]))):
            r.status = "failed"
        s.commit()


@pytest.mark.parametrize("message_org", ["another org", "no org", "unknown org"])
def test_actor_cannot_see_other_org_job(org, make_org, as_tenant, runtime, message_org):
    """An actor runs as the message's org: a job id of another org is invisible to it."""
    owner = make_org()
    with as_tenant(owner.id) as s:
        job = Job(kind="ping")
        s.add(job)
        s.commit()
    org_id = {"another org": str(org.id), "no org": None, "unknown org": str(uuid.UUID(int=1))}
    message = dramatiq.Message(
        queue_name="default",
        actor_name="record_ping",
        args=(),
        kwargs={"org_id": org_id[message_org], "job_id": str(job.id), "marker": "stolen"},
        options={},
    )
    middleware = TenantMiddleware()
    middleware.before_process_message(runtime.broker, message)
    try:
        with pytest.raises(RuntimeError, match="not visible"):
            record_ping(**message.kwargs)
    finally:
        middleware.after_skip_message(runtime.broker, message)
    assert _job(as_tenant, owner, job.id).state == "queued"


def test_unreachable_broker_fails_a_batch_once(org, as_tenant, runtime, monkeypatch):
    """A broker that times out is asked once per batch, not once per row: each further row
    would wait as long again while the batch holds its rows' locks."""
    from redis.exceptions import TimeoutError as RedisTimeoutError

    calls: list[str] = []

    def hung(message, **_kw):
        calls.append(message.options["outbox_id"])
        raise RedisTimeoutError("Timeout reading from socket")

    monkeypatch.setattr(runtime.broker, "enqueue", hung)
    with as_tenant(org.id) as s:
        for marker in ("a", "b", "c"):
            request_job(s, "record_ping", job_kind="ping", marker=marker)
        s.commit()
    _relayed(runtime)
    monkeypatch.undo()
    assert len(calls) == 1
    with context.platform(), db.new_session() as s:
        rows = s.scalars(select(OutboxMessage).where(OutboxMessage.org_id == org.id)).all()
    assert len(rows) == 3
    assert all(r.status == "pending" and r.attempts == 1 for r in rows)
    assert all("Timeout" in (r.last_error or "") for r in rows)
