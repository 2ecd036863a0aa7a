"""Resending notifications (issue 14, point 8) over HTTP, and `certs tick` counting failures."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner
from sqlalchemy import select, update

from certifications.automation.models import Notification
from certifications.automation.notifications import evaluate_rules
from cli.main import main as cli
from infra import context
from infra import database as db
from jobs.models import OutboxMessage
from tenancy.models import Organization
from tests.support.suite import CLI_ENV

WEBHOOK_RULE = {"trigger": "expired", "channels": ["webhook"]}
EMAIL_RULE = {"trigger": "expired", "recipients": ["holder"], "channels": ["email"]}


def _with_webhook(org, url):
    with context.platform(), db.new_session() as s:
        s.get(Organization, org.id).webhook_url = url
        s.commit()


def _expired(org, make_certification, make_employee, make_assignment, rule, n=1):
    cert = make_certification(org, name="Forklift", notification_rules=[rule])
    today = db.utcnow().date()
    return [
        make_assignment(
            cert,
            make_employee(org, name=f"Bob {i}", email=f"bob{i}@example.test"),
            expires_on=today - timedelta(days=2),
            status="expired",
        )
        for i in range(n)
    ]


def _notes(as_tenant, org):
    with as_tenant(org.id) as s:
        return list(s.scalars(select(Notification).order_by(Notification.created_at)))


def _set(as_tenant, org, **values):
    with as_tenant(org.id) as s:
        s.execute(update(Notification).values(**values))
        s.commit()


def test_certs_tick_counts_a_webhook_that_failed_every_attempt(
    make_org, webhook, jobs, as_tenant, make_certification, make_employee, make_assignment
):
    """It printed `"failed": 0` after a webhook failed every attempt."""
    org = make_org()
    _with_webhook(org, webhook.url)
    _expired(org, make_certification, make_employee, make_assignment, WEBHOOK_RULE)
    webhook.statuses = [500] * 10
    result = CliRunner(env=CLI_ENV).invoke(cli, ["tick", "--org", str(org.id), "--timeout", "60"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert len(webhook.received) == 3  # NOTIFICATION_MAX_ATTEMPTS of the suite
    assert report["queued_work"]["failed"] == 1, report
    assert report["queued_work"]["deliveries"]["failed"] == 1
    assert report["queued_work"]["deliveries"]["sent"] == 0
    assert [n.status for n in _notes(as_tenant, org)] == ["failed"]


def test_retry_one_failed_notification_queues_it_again_after_commit(
    org, api, as_tenant, smtp, jobs, make_certification, make_employee, make_assignment
):
    _expired(org, make_certification, make_employee, make_assignment, EMAIL_RULE)
    with as_tenant(org.id) as s:
        evaluate_rules(s, org.id, db.utcnow().date())
        s.commit()
    _set(as_tenant, org, status="failed", attempts=3, last_error="550 refused")
    (note,) = _notes(as_tenant, org)

    got = api.post(f"/notifications/{note.id}/retry")
    assert got.status_code == 202, got.get_json()
    body = got.get_json()
    assert (body["status"], body["attempts"]) == ("pending", 0)
    assert body["subject_name"] == "Bob 0"
    with context.platform(), db.new_session() as s:
        queued = s.scalars(
            select(OutboxMessage).where(
                OutboxMessage.actor_name == "deliver_notification", OutboxMessage.org_id == org.id
            )
        ).all()
    assert [m.payload["notification_id"] for m in queued] == [str(note.id)]
    jobs.drain()
    (sent,) = _notes(as_tenant, org)
    assert (sent.status, sent.attempts) == ("sent", 1)
    assert [m.rcpt_tos for m in smtp.messages] == [["bob0@example.test"]]
    # Sent: nothing to resend.
    again = api.post(f"/notifications/{note.id}/retry")
    assert again.status_code == 409
    assert "sent" in again.get_json()["message"]


def test_retry_in_bulk_since_a_time_answers_the_count(
    org, api, as_tenant, smtp, jobs, make_certification, make_employee, make_assignment
):
    _expired(org, make_certification, make_employee, make_assignment, EMAIL_RULE, n=3)
    with as_tenant(org.id) as s:
        evaluate_rules(s, org.id, db.utcnow().date())
        s.commit()
    old, recent, cancelled = _notes(as_tenant, org)
    long_ago = datetime(2026, 1, 1, tzinfo=UTC)
    with as_tenant(org.id) as s:
        s.execute(
            update(Notification)
            .where(Notification.id == old.id)
            .values(status="failed", updated_at=long_ago)
        )
        s.execute(
            update(Notification)
            .where(Notification.id == recent.id)
            .values(status="failed", attempts=3)
        )
        s.execute(
            update(Notification).where(Notification.id == cancelled.id).values(status="cancelled")
        )
        s.commit()
    since = (long_ago + timedelta(days=1)).isoformat()
    got = api.post("/notifications/retry", json={"status": "failed", "since": since})
    assert got.status_code == 202, got.get_json()
    assert got.get_json() == {"count": 1}
    jobs.drain()
    statuses = {n.id: (n.status, n.attempts) for n in _notes(as_tenant, org)}
    assert statuses[recent.id] == ("sent", 1)  # attempts reset, then one send
    assert statuses[old.id][0] == "failed"
    assert statuses[cancelled.id][0] == "cancelled"
    got = api.post("/notifications/retry", json={"status": "cancelled", "since": since})
    assert got.get_json() == {"count": 1}
    for body in ({"status": "sent", "since": since}, {"status": "failed"}, {}):
        assert api.post("/notifications/retry", json=body).status_code == 422, body
    jobs.drain()
    assert len(smtp.messages) == 2


def test_retry_refuses_foreign_and_unknown_notifications(
    org, api, make_org, api_for, as_tenant, make_certification, make_employee, make_assignment
):
    other = make_org()
    _expired(other, make_certification, make_employee, make_assignment, EMAIL_RULE)
    with as_tenant(other.id) as s:
        evaluate_rules(s, other.id, db.utcnow().date())
        s.commit()
    _set(as_tenant, other, status="failed")
    (theirs,) = _notes(as_tenant, other)
    assert api.post(f"/notifications/{theirs.id}/retry").status_code == 404
    since = "2000-01-01T00:00:00Z"
    assert api.post(
        "/notifications/retry", json={"status": "failed", "since": since}
    ).get_json() == {"count": 0}
    assert [n.status for n in _notes(as_tenant, other)] == ["failed"]
