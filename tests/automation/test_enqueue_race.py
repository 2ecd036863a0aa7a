"""Concurrent ticks of one organization queue each notification's delivery once."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from certifications.assignments.models import Assignment
from certifications.automation.models import Notification
from certifications.automation.notifications import evaluate_rules
from certifications.automation.pipeline import enqueue_deliveries
from certifications.catalog.models import Certification
from certifications.directory.models import Employee
from infra import context
from infra import database as db
from jobs.models import OutboxMessage
from tests.automation.conftest import TODAY
from workers.tick import tick_org
from workers.unit_of_work import JobRun, job_run

RULE = {"trigger": "before_expiry", "days": 30, "recipients": ["holder"], "channels": ["email"]}
NOW = datetime(TODAY.year, TODAY.month, TODAY.day, 12, tzinfo=UTC)
NOTIFICATIONS = 400
TICKS = 4


def _arrange(org_id: Any, n: int) -> None:
    with context.tenant(org_id), db.new_session() as s:
        cert = Certification(
            name="Confined Space", type="employee", validity_months=12, notification_rules=[RULE]
        )
        people = [Employee(name=f"W{i:04d}", email=f"w{i}@example.test") for i in range(n)]
        s.add(cert)
        s.add_all(people)
        s.flush()
        s.add_all(
            Assignment(
                certification_id=cert.id,
                subject_type="employee",
                subject_id=p.id,
                issued_on=TODAY - timedelta(days=300),
                effective_on=TODAY - timedelta(days=300),
                expires_on=TODAY + timedelta(days=10),
                status="expires_soon",
            )
            for p in people
        )
        s.flush()
        evaluate_rules(s, org_id, TODAY)
        s.commit()


def _race(org_id: Any, step: Callable[[JobRun], int]) -> list[int]:
    """Run `step` in TICKS threads at once, each in its own unit of work (own session)."""
    barrier = threading.Barrier(TICKS)
    errors: list[BaseException] = []
    queued: list[int] = []

    def one() -> None:
        try:
            barrier.wait(timeout=30)
            with job_run(org_id) as run:
                queued.append(step(run))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(TICKS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    return queued


def _messages_per_notification(org_id: Any) -> Counter[str]:
    with context.platform(), db.new_session() as s:
        return Counter(
            row.payload["notification_id"]
            for row in s.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.org_id == org_id,
                    OutboxMessage.actor_name == "deliver_notification",
                )
            )
        )


@pytest.fixture
def quiet_broker(runtime, monkeypatch):
    """The relay publishes into a list; the org's outbox rows are closed afterwards."""
    published: list[Any] = []
    monkeypatch.setattr(runtime.broker, "enqueue", lambda m, **_k: published.append(m) or m)
    orgs: list[Any] = []
    yield published, orgs
    with context.platform(), db.new_session() as s:  # nobody is meant to run these
        s.execute(update(OutboxMessage).where(OutboxMessage.org_id.in_(orgs)).values(status="done"))
        s.commit()


@pytest.mark.postgres
@pytest.mark.parametrize("step", ["enqueue_deliveries", "tick_org"])
def test_concurrent_ticks_queue_each_delivery_once(make_org, quiet_broker, runtime, step):
    published, orgs = quiet_broker
    org = make_org()
    orgs.append(org.id)
    _arrange(org.id, NOTIFICATIONS)
    if step == "tick_org":
        queued = [r["queued"] for r in _race(org.id, lambda run: tick_org(run, org.id, NOW))]
    else:
        queued = _race(org.id, lambda run: enqueue_deliveries(run.session, NOW))
    per_note = _messages_per_notification(org.id)
    with context.tenant(org.id), db.new_session() as s:
        notes = s.scalar(select(func.count()).select_from(Notification))
    assert notes == NOTIFICATIONS
    assert sum(per_note.values()) == NOTIFICATIONS, f"{sum(per_note.values())} messages"
    assert len(per_note) == NOTIFICATIONS
    assert sum(queued) == NOTIFICATIONS
    if runtime.publisher is not None:  # a network broker publishes from a background thread
        assert runtime.publisher.flush(timeout=30)
    deliveries = [
        m
        for m in published
        if m.actor_name == "deliver_notification" and m.kwargs["notification_id"] in per_note
    ]
    assert len(deliveries) == NOTIFICATIONS


def test_a_stuck_send_is_queued_again_once_per_claim(make_org, quiet_broker):
    from certifications.automation.delivery import LEASE

    published, orgs = quiet_broker
    org = make_org()
    orgs.append(org.id)
    _arrange(org.id, 2)
    with context.tenant(org.id), db.new_session() as s:
        assert enqueue_deliveries(s, NOW) == 2
        stuck = s.scalars(select(Notification).order_by(Notification.recipient)).first()
        stuck.status, stuck.claimed_at = "sending", NOW + timedelta(seconds=1)  # worker died
        s.commit()
    later = NOW + LEASE + timedelta(seconds=2)
    for expected in (1, 0, 0):  # the first tick past the lease queues it; later ones do not
        with context.tenant(org.id), db.new_session() as s:
            assert enqueue_deliveries(s, later) == expected
            s.commit()
        later += timedelta(minutes=5)
    with context.tenant(org.id), db.new_session() as s:  # claimed again, died again
        s.execute(update(Notification).where(Notification.id == stuck.id).values(claimed_at=later))
        s.commit()
    with context.tenant(org.id), db.new_session() as s:
        assert enqueue_deliveries(s, later + LEASE + timedelta(seconds=1)) == 1
        s.commit()
    assert sorted(_messages_per_notification(org.id).values()) == [1, 3]
