"""Faults with real processes: a SIGKILLed worker, a Redis outage, PostgreSQL backends killed.

Each test runs its OWN `redis-server` on a free loopback port and its own `dramatiq` worker
process on it (the shared Redis of the suite is never touched), and points the outbox relay at
that broker. Long variants are `slow` (`make soak`).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import dramatiq
import pytest
from sqlalchemy import create_engine, event, func, insert, select, update
from sqlalchemy.orm import Session

from infra import context
from infra import database as db
from jobs.models import Job, OutboxMessage
from jobs.outbox import request_job
from tests.support.suite import SUBPROCESS_ENV

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OwnRedis:
    """A private redis-server (no persistence) this test can stop and start at will."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.skip("redis-server not installed")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        import redis

        client = redis.Redis.from_url(self.url)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("own redis-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


class Worker:
    """A `dramatiq` worker process (own process group, so SIGKILL takes its children too)."""

    def __init__(self, redis_url: str, namespace: str, **env: str) -> None:
        self.env = SUBPROCESS_ENV | {"REDIS_URL": redis_url, "REDIS_NAMESPACE": namespace} | env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "tests.support.actors:setup_worker",
             "--processes", "1", "--threads", "2"],
            env=self.env,
            start_new_session=True,
        )  # fmt: skip

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


@pytest.fixture
def own_stack(monkeypatch, runtime) -> Iterator[tuple[OwnRedis, Callable[[], Worker]]]:
    """Own Redis + a broker on it that the outbox relay uses; workers made on demand."""
    from dramatiq.brokers.redis import RedisBroker

    from jobs.broker import _middleware

    server = OwnRedis()
    server.start()
    namespace = f"certs-fault-{uuid.uuid4().hex[:8]}"
    broker = RedisBroker(
        url=server.url, namespace=namespace, middleware=_middleware(), heartbeat_timeout=30_000
    )
    shared = runtime.broker
    for name in shared.get_declared_actors():
        broker.declare_actor(shared.get_actor(name))
    # The after-commit relay publishes on the broker bootstrap gave it (the suite's Redis);
    # the sweep and explicit relays on dramatiq's global one: both go to ours instead.
    monkeypatch.setattr(shared, "enqueue", broker.enqueue)
    monkeypatch.setattr(dramatiq, "get_broker", lambda: broker)
    if runtime.publisher is not None:  # so that rows carry the epoch of our Redis
        monkeypatch.setattr(runtime.publisher, "broker", broker)
    started: list[Worker] = []

    def make_worker(**env: str) -> Worker:
        w = Worker(server.url, namespace, **env)
        started.append(w)
        return w

    yield server, make_worker
    for w in started:
        w.stop()
    server.stop()
    broker.close()
    # Never leave rows "sent" that the suite's drain() would wait for, nor rows the sweep
    # would send again.
    with context.platform(), db.new_session() as s:
        s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.status.in_(("pending", "sent", "failed")))
            .where(OutboxMessage.org_id.in_(FAULT_ORGS))
            .values(status="dead", last_error="fault test cleanup")
        )
        s.commit()


FAULT_ORGS: list[uuid.UUID] = []


def _wait(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _outbox_states(org_id: uuid.UUID, actor: str | None = None) -> dict[str, int]:
    with context.platform(), db.new_session() as s:
        stmt = select(OutboxMessage.status, func.count()).where(OutboxMessage.org_id == org_id)
        if actor:
            stmt = stmt.where(OutboxMessage.actor_name == actor)
        rows = s.execute(stmt.group_by(OutboxMessage.status)).all()
    return dict(rows)


@pytest.fixture
def crew(make_role, make_certification):
    """`crew(org, n)`: a role of `n` employees (inserted set-based) and a certification for it."""
    from certifications.directory.models import Employee

    def build(org, n: int):
        role = make_role(org, name="Crew")
        with context.tenant(org.id), db.new_session() as s:
            for start in range(0, n, 10_000):
                s.execute(
                    insert(Employee),
                    [
                        {
                            "org_id": org.id,
                            "id": uuid.uuid4(),
                            "name": f"E{i:06d}",
                            "role_id": role.id,
                        }
                        for i in range(start, min(n, start + 10_000))
                    ],
                )
            s.commit()
        return make_certification(
            org, name="Working at height", validity_months=12, role_ids=[role.id]
        )

    return build


def _assignment_counts(org_id: uuid.UUID, cert_id: uuid.UUID) -> tuple[int, int]:
    from certifications.assignments.models import Assignment

    with context.tenant(org_id), db.new_session() as s:
        total, distinct = s.execute(
            select(func.count(), func.count(func.distinct(Assignment.subject_id))).where(
                Assignment.certification_id == cert_id
            )
        ).one()
    return total, distinct


def _kill_worker_mid_fanout(make_org, crew, own_stack, n: int) -> None:
    import jobs.relay as relay

    _server, make_worker = own_stack
    org = make_org()
    FAULT_ORGS.append(org.id)
    cert_id = crew(org, n).id
    with context.tenant(org.id), db.new_session() as s:
        job = request_job(s, "fanout_certification", job_kind="fanout", certification_id=cert_id)
        s.commit()
        job_id = job.id
    fanout_states = lambda: _outbox_states(org.id, "fanout_certification")  # noqa: E731
    # Relayed to our Redis after commit (by the process's background publisher).
    _wait(lambda: fanout_states() == {"sent": 1}, 10, "the relay after commit")

    def job_state() -> str:
        with context.tenant(org.id), db.new_session() as s:
            return s.scalar(select(Job.state).where(Job.id == job_id))

    worker = make_worker()
    worker.start()
    _wait(lambda: job_state() == "running", 60, "the fan-out to start")
    time.sleep(0.05)
    worker.kill()  # SIGKILL mid-transaction: no cleanup, no ack
    at_kill = _assignment_counts(org.id, cert_id)
    assert job_state() == "running", "the fan-out finished before the kill: nothing was tested"
    assert at_kill == (0, 0), f"partial fan-out visible after SIGKILL: {at_kill}"

    # Restart; the outbox sweep re-sends a row sent long ago and never done (Redis would also
    # requeue the dead worker's message after its heartbeat timeout).
    worker = make_worker()
    worker.start()
    assert relay.sweep(now=db.utcnow() + timedelta(minutes=16)) >= 1
    # (the finished fan-out also requests the org's tick: a row of its own)
    _wait(lambda: fanout_states() == {"done": 1}, 300, "the re-sent fan-out to finish")
    _wait(lambda: job_state() == "done", 30, "the job to be done")
    assert _assignment_counts(org.id, cert_id) == (n, n), "lost or duplicated assignments"

    # A third delivery (what Redis' own requeue of the dead worker's message does), run
    # in-process as the actor would: it changes nothing.
    actor = dramatiq.get_broker().get_actor("fanout_certification")
    with context.tenant(org.id):
        actor.fn(org_id=str(org.id), certification_id=str(cert_id), job_id=str(job_id))
    assert _assignment_counts(org.id, cert_id) == (n, n)
    assert job_state() == "done"


def test_sigkill_worker_mid_fanout(make_org, crew, own_stack):
    _kill_worker_mid_fanout(make_org, crew, own_stack, 20_000)


@pytest.mark.slow
def test_sigkill_worker_mid_fanout_100k(make_org, crew, own_stack):
    _kill_worker_mid_fanout(make_org, crew, own_stack, 100_000)


# A short lease, so that the test waits seconds, not the default's half minute.
SHORT_LEASE = {"JOB_LEASE_SECONDS": "6"}


@contextmanager
def _sweeping(every: float = 5.0) -> Iterator[None]:
    """What `certs scheduler` does for the outbox: `jobs.relay.sweep()` every few seconds."""
    import jobs.relay as relay

    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            try:
                relay.sweep()
            except Exception:  # noqa: S112 - like the scheduler: log-and-continue
                continue

    thread = threading.Thread(target=loop, name="test-sweep", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


def _recover_after_sigkill(make_org, crew, own_stack, n: int, timeout: float) -> float:
    """SIGKILL the worker mid fan-out, start another, let the periodic sweep alone recover:
    seconds from the kill to the job being `done` (with exactly one assignment per member)."""
    _server, make_worker = own_stack
    org = make_org()
    FAULT_ORGS.append(org.id)
    cert_id = crew(org, n).id
    with context.tenant(org.id), db.new_session() as s:
        job = request_job(s, "fanout_certification", job_kind="fanout", certification_id=cert_id)
        s.commit()
        job_id = job.id

    def job_state() -> str:
        with context.tenant(org.id), db.new_session() as s:
            return s.scalar(select(Job.state).where(Job.id == job_id))

    _wait(lambda: _outbox_states(org.id, "fanout_certification") == {"sent": 1}, 10, "relay")
    worker = make_worker(**SHORT_LEASE)
    worker.start()
    _wait(lambda: job_state() == "running", 60, "the fan-out to start")
    time.sleep(0.05)
    worker.kill()
    killed_at = time.monotonic()
    assert job_state() == "running", "the fan-out finished before the kill: nothing was tested"
    make_worker(**SHORT_LEASE).start()
    with _sweeping():
        _wait(lambda: job_state() == "done", timeout, "the job to be reclaimed and done")
    took = time.monotonic() - killed_at
    print(f"\nrecovered {n} members after SIGKILL in {took:.1f} s")
    assert _assignment_counts(org.id, cert_id) == (n, n), "lost or duplicated assignments"
    return took


def test_sigkill_worker_recovered_by_the_sweep_within_a_minute(make_org, crew, own_stack):
    """No manual sweep: the dead worker's lease expires and the scheduler's sweep re-sends."""
    took = _recover_after_sigkill(make_org, crew, own_stack, 20_000, timeout=120)
    assert took < 60, f"recovery took {took:.0f} s"


def _recover_after_redis_crash(make_org, own_stack, api_for, make_role, make_certification, n):
    """`n` jobs published to Redis, Redis crashes (no persistence) before a worker takes them;
    Redis and a worker come back and the periodic sweep alone recovers: seconds until all done."""
    server, make_worker = own_stack
    org = make_org()
    FAULT_ORGS.append(org.id)
    role_id = make_role(org, name="Crew").id
    make_certification(org, name="First aid", validity_months=12, role_ids=[role_id])
    client = api_for(org)
    for i in range(n):
        resp = client.post("/employees", json={"name": f"Hire {i}", "role_id": str(role_id)})
        assert resp.status_code == 201, resp.get_json()
    _wait(lambda: set(_outbox_states(org.id)) == {"sent"}, 30, "every job published")
    server.stop()  # SIGTERM without persistence: every queued message is gone
    crashed_at = time.monotonic()
    server.start()
    make_worker().start()
    with _sweeping():
        _wait(lambda: set(_outbox_states(org.id)) == {"done"}, 1200, "every lost job to run")
    took = time.monotonic() - crashed_at
    print(f"\n{n} jobs lost in a Redis crash ran {took:.1f} s after it")
    return took


def test_redis_crash_lost_messages_sent_again_within_a_minute(
    make_org, own_stack, api_for, make_role, make_certification
):
    took = _recover_after_redis_crash(
        make_org, own_stack, api_for, make_role, make_certification, 25
    )
    assert took < 60, f"recovery took {took:.0f} s"


def test_redis_outage_loses_no_job(make_org, own_stack, api_for, make_role, make_certification):
    """Redis down: every write still answers 2xx (jobs wait in the outbox); Redis back: all run."""
    import jobs.relay as relay
    from certifications.assignments.models import Assignment

    server, make_worker = own_stack
    org = make_org()
    FAULT_ORGS.append(org.id)
    role_id = make_role(org, name="Crew").id
    cert_id = make_certification(
        org, name="First aid", type="employee", validity_months=12, role_ids=[role_id]
    ).id
    client = api_for(org)
    server.stop()
    created = []
    for i in range(25):
        resp = client.post("/employees", json={"name": f"Hire {i}", "role_id": str(role_id)})
        assert resp.status_code == 201, resp.get_json()
        created.append(resp.get_json()["id"])
    with context.tenant(org.id), db.new_session() as s:  # a job the API asks for directly too
        job = request_job(s, "record_ping", job_kind="ping", marker="outage")
        s.commit()
        ping_id = job.id
    states = _outbox_states(org.id)
    assert states.get("pending", 0) >= 2, states  # kept, with the relay error recorded
    assert "sent" not in states

    server.start()  # same port, empty: whatever Redis held is gone
    make_worker().start()
    time.sleep(1.0)
    _wait(lambda: relay.sweep(now=db.utcnow() + timedelta(seconds=10)) == 0, 60, "sweep")
    _wait(lambda: set(_outbox_states(org.id)) == {"done"}, 120, "every job to run")
    with context.tenant(org.id), db.new_session() as s:
        covered = set(
            map(
                str,
                s.scalars(
                    select(Assignment.subject_id).where(Assignment.certification_id == cert_id)
                ),
            )
        )
        assert s.scalar(select(Job.state).where(Job.id == ping_id)) == "done"
    assert set(created) <= covered, "a fan-out requested during the outage never ran"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("patch", "/org", {"name": "Renamed during outage"}), ("post", "/roles", {"name": "Welder"})],
)
def test_postgres_backends_killed_mid_request(method, path, body, org, api_for, backend):
    """Every app-role backend is terminated between the view's flush and the commit: a clear
    503, nothing written, and the next request succeeds (pool pre-ping replaces dead links)."""
    from tests.support.backend import _admin_url, terminate_app_backends

    admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    fired: list[int] = []

    def terminate(session: Session, _ctx: Any) -> None:
        if fired:
            return
        with admin.connect() as conn:
            killed = terminate_app_backends(conn, backend)
        fired.append(killed)

    client = api_for(org)
    before = client.get("/org").get_json()
    event.listen(Session, "after_flush", terminate)
    try:
        resp = getattr(client, method)(path, json=body)
    finally:
        event.remove(Session, "after_flush", terminate)
        admin.dispose()
    assert fired
    assert fired[0] >= 1
    assert resp.status_code == 503, resp.get_data(as_text=True)
    payload = resp.get_json()
    assert payload["code"] == 503
    assert "database" in payload["message"].lower()

    after = client.get("/org")  # the pool hands out a fresh connection
    assert after.status_code == 200
    assert after.get_json()["name"] == before["name"]
    if path == "/roles":
        names = [r["name"] for r in client.get("/roles").get_json()["items"]]
        assert body["name"] not in names
    again = getattr(client, method)(path, json=body)
    assert again.status_code in (200, 201), again.get_json()


def test_idle_pool_connections_killed_between_requests(org, api_for, backend):
    """Backends terminated while the pool holds them idle (a PostgreSQL restart or failover):
    the next request still succeeds — pool pre-ping swaps the dead connections out."""
    from tests.support.backend import _admin_url, terminate_app_backends

    client = api_for(org)
    for _ in range(3):
        assert client.get("/org").status_code == 200
    admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        killed = terminate_app_backends(conn, backend)
    admin.dispose()
    assert killed >= 1
    time.sleep(0.2)
    resp = client.patch("/org", json={"name": "After the restart"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert client.get("/org").get_json()["name"] == "After the restart"


def test_idle_pool_connections_killed_are_replaced_outside_the_api(org, api_for, backend):
    """Workers, the scheduler and the CLI have no request to run again: a pooled connection
    idle longer than `IDLE_PING_S` is pinged on checkout, and a dead one replaced unseen."""
    from tests.support.backend import _admin_url, terminate_app_backends

    client = api_for(org)
    for _ in range(3):
        assert client.get("/org").status_code == 200
    admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        killed = terminate_app_backends(conn, backend)
    admin.dispose()
    assert killed >= 1
    time.sleep(0.3)
    assert db.IDLE_PING_S < 0.3
    with context.tenant(org.id), db.new_session() as s:  # a job's or the CLI's session
        assert s.scalar(select(func.count()).select_from(Job)) is not None
