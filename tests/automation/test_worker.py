"""The periodic tick and the delivery actor through the real broker and worker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from certifications.automation.models import Notification, Task
from tests.automation.conftest import TODAY
from workers.tick import tick_now

RULE = {"trigger": "before_expiry", "days": 30, "recipients": ["holder"], "channels": ["email"]}
NOW = datetime(TODAY.year, TODAY.month, TODAY.day, 12, tzinfo=UTC)


@pytest.fixture
def org_due(make_org, make_certification, make_employee, make_assignment):
    """`org_due(n)`: an org with one admin and `n` holders whose certification expires soon."""

    def build(n: int = 3):
        org = make_org(admin_emails=["boss@example.test"])
        cert = make_certification(
            org,
            name="Confined Space",
            notification_rules=[RULE],
            task_rules=[{"days_before_expiry": 30, "assignee": "holder"}],
        )
        for i in range(n):
            emp = make_employee(org, name=f"Worker {i}", email=f"w{i}@example.test")
            make_assignment(
                cert, emp, expires_on=TODAY + timedelta(days=5 + i), status="expires_soon"
            )
        return org

    return build


def test_tick_creates_tasks_and_delivers_notifications_through_the_worker(
    org_due, smtp, jobs, as_tenant
):
    org = org_due()
    report = tick_now(now=NOW, org_id=org.id)["ticks"][str(org.id)]
    assert report["notifications"]["created"] == 3
    assert report["tasks"]["created"] == 3
    assert report["queued"] == 3
    jobs.drain()
    assert sorted(r for m in smtp.messages for r in m.rcpt_tos) == [
        "w0@example.test",
        "w1@example.test",
        "w2@example.test",
    ]
    again = tick_now(now=NOW + timedelta(hours=1), org_id=org.id)  # the next tick
    jobs.drain()
    assert again["ticks"][str(org.id)]["notifications"]["created"] == 0
    assert again["ticks"][str(org.id)]["queued"] == 0
    assert len(smtp.messages) == 3
    with as_tenant(org.id) as s:
        assert {n.status for n in s.scalars(select(Notification))} == {"sent"}
        assert len(s.scalars(select(Task)).all()) == 3


def test_refusing_server_through_the_worker_ends_failed_and_visible(org_due, smtp, jobs, api_for):
    org = org_due(n=1)
    smtp.refuse = True
    tick_now(now=NOW, org_id=org.id)
    jobs.drain()  # the actor retries with backoff (NOTIFICATION_* settings), then gives up
    assert smtp.messages == []
    items = api_for(org).get("/notifications?status=failed").get_json()["items"]
    assert len(items) == 1
    assert items[0]["attempts"] == 3
    assert "550" in items[0]["last_error"]
    assert items[0]["recipient"] == "w0@example.test"
    assert items[0]["sent_at"] is None


def test_notifications_api_filters_pages_and_guards(org_due, make_org, api_for, as_tenant):
    from certifications.automation.notifications import evaluate_rules

    org = org_due(n=3)
    with as_tenant(org.id) as s:
        evaluate_rules(s, org.id, TODAY)
        first = s.scalars(select(Notification).order_by(Notification.recipient)).first()
        first.status = "sent"
        s.commit()
    api = api_for(org, scopes=["certifications:read"])
    items = api.get("/notifications").get_json()["items"]
    assert len(items) == 3
    assert set(items[0]) >= {
        "status",
        "attempts",
        "channel",
        "recipient",
        "created_at",
        "sent_at",
        "last_error",
        "assignment_id",
    }
    assert [i["id"] for i in api.get("/notifications?status=sent").get_json()["items"]] == [
        str(first.id)
    ]
    assert len(api.get("/notifications?status=pending&channel=email").get_json()["items"]) == 2
    assert api.get("/notifications?channel=webhook").get_json()["items"] == []
    by_asg = api.get(f"/notifications?assignment_id={first.assignment_id}").get_json()["items"]
    assert [i["id"] for i in by_asg] == [str(first.id)]
    page1 = api.get("/notifications?limit=2").get_json()
    page2 = api.get(f"/notifications?limit=2&cursor={page1['next_cursor']}").get_json()
    assert len({i["id"] for i in page1["items"] + page2["items"]}) == 3
    assert page2["next_cursor"] is None

    bad = api.get("/notifications?status=lost")
    assert bad.status_code == 422
    assert "status" in bad.get_json()["errors"]["query"]
    assert api.get("/notifications?limit=100000").status_code == 422
    assert api.get("/notifications?cursor=garbage").status_code == 422
    assert api_for(org, scopes=["directory:read"]).get("/notifications").status_code == 403
    off = api_for(make_org(modules=())).get("/notifications")
    assert (off.status_code, off.get_json()["code"]) == (403, "module_disabled")
    assert api_for(make_org()).get("/notifications").get_json()["items"] == []


def test_deliveries_are_queued_once_and_a_stuck_send_again_after_its_lease(org_due, as_tenant):
    from certifications.automation.delivery import LEASE
    from certifications.automation.notifications import evaluate_rules
    from certifications.automation.pipeline import enqueue_deliveries
    from jobs.models import OutboxMessage

    org = org_due(n=2)
    with as_tenant(org.id) as s:  # never committed: nothing reaches the broker
        evaluate_rules(s, org.id, TODAY)
        assert enqueue_deliveries(s, NOW) == 2
        assert enqueue_deliveries(s, NOW + timedelta(minutes=1)) == 0  # already queued
        msgs = s.scalars(select(OutboxMessage).where(OutboxMessage.org_id == org.id)).all()
        assert sorted(m.actor_name for m in msgs) == ["deliver_notification"] * 2
        first, second = s.scalars(select(Notification).order_by(Notification.recipient)).all()
        first.status, first.claimed_at = "sending", NOW  # a worker died mid-send
        s.flush()
        assert enqueue_deliveries(s, NOW + LEASE - timedelta(seconds=1)) == 0
        # past the lease: the stuck one; a queued pending row is Dramatiq's to retry and the
        # outbox's to resend if its message got lost, never the tick's
        assert enqueue_deliveries(s, NOW + LEASE + timedelta(seconds=1)) == 1
        s.rollback()
