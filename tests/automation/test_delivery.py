"""Delivery over a real SMTP server and a real HTTP receiver on loopback."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from certifications.automation import delivery
from certifications.automation.models import Notification
from certifications.automation.notifications import evaluate_rules
from infra import context
from infra import database as db
from tenancy.models import Organization
from tenancy.sealed import SealedSecret
from tests.automation.conftest import TODAY
from tests.support import factories
from tests.support.suite import SMTP_PORT, SUBPROCESS_ENV
from workers.delivery import deliver

RULE = {
    "trigger": "before_expiry",
    "days": 30,
    "recipients": ["holder", "admins"],
    "channels": ["email"],
}
FAST = delivery.RetryPolicy(max_attempts=3, base_ms=10, max_ms=20)


def _smtp_settings(settings):
    return dataclasses.replace(
        settings,
        smtp_host="127.0.0.1",
        smtp_port=SMTP_PORT,
        mail_from="certs@example.test",
    )


def _evaluate(as_tenant, org, today=TODAY):
    with as_tenant(org.id) as s:
        report = evaluate_rules(s, org.id, today)
        s.commit()
    return report


def _notes(as_tenant, org, **where):
    with as_tenant(org.id) as s:
        stmt = select(Notification).filter_by(**where).order_by(Notification.recipient)
        return list(s.scalars(stmt))


def _deliver_all(org, settings, policy=FAST, now=None):
    outcomes = []
    with context.tenant(org.id):
        with db.new_session() as s:
            ids = list(s.scalars(select(Notification.id).where(Notification.status == "pending")))
        for nid in ids:
            outcomes.append(deliver(org.id, nid, settings=settings, policy=policy, now=now))
    return outcomes


@pytest.fixture
def scenario(make_org, make_employee, make_certification, make_assignment):
    """An org with one admin, an employee whose certification expires in 10 days."""
    org = make_org(name="Acme Field Services", admin_emails=["boss@example.test"])
    cert = make_certification(org, name="Working at Heights", notification_rules=[RULE])
    emp = make_employee(org, name="Ada Lovelace", email="ada@example.test")
    asg = make_assignment(cert, emp, expires_on=TODAY + timedelta(days=10))
    return org, asg


def test_right_message_reaches_the_right_recipients(scenario, smtp, settings, as_tenant):
    org, asg = scenario
    _evaluate(as_tenant, org, TODAY - timedelta(days=21))  # 31 days before expiry: too early
    assert _deliver_all(org, _smtp_settings(settings)) == []
    assert smtp.messages == []

    _evaluate(as_tenant, org)
    assert {o.state for o in _deliver_all(org, _smtp_settings(settings))} == {"sent"}
    assert sorted(r for m in smtp.messages for r in m.rcpt_tos) == [
        "ada@example.test",
        "boss@example.test",
    ]
    mail = smtp.to("ada@example.test")[0]
    expiry = (TODAY + timedelta(days=10)).isoformat()
    assert mail.mail_from == "certs@example.test"
    assert "Working at Heights" in mail.message["Subject"]
    assert "Ada Lovelace" in mail.message["Subject"]
    for body in (mail.part("plain"), mail.part("html")):
        assert "Working at Heights" in body
        assert "Ada Lovelace" in body
        assert expiry in body
        assert "What to do" in body
    notes = _notes(as_tenant, org)
    assert {n.status for n in notes} == {"sent"}
    assert {n.delivered_via for n in notes} == {"smtp"}
    assert {m.message_id for m in smtp.messages} == {f"<{n.id}@example.test>" for n in notes}


def test_exactly_one_email_across_reruns_and_redeliveries(scenario, smtp, settings, as_tenant):
    org, _asg = scenario
    smtp_settings = _smtp_settings(settings)
    for day in range(3):  # the daily tick on three days of the window
        _evaluate(as_tenant, org, TODAY + timedelta(days=day))
        _deliver_all(org, smtp_settings)
    with context.tenant(org.id):  # a duplicate message for an already-sent row
        for n in _notes(as_tenant, org):
            assert deliver(org.id, n.id, settings=smtp_settings, policy=FAST).state == "skipped"
    assert len(smtp.to("ada@example.test")) == 1
    assert len(smtp.to("boss@example.test")) == 1


def test_two_concurrent_workers_send_each_email_once(
    make_org, smtp, settings, as_tenant, make_employee, make_certification, make_assignment
):
    org = make_org(admin_emails=["boss@example.test"])
    cert = make_certification(org, notification_rules=[{**RULE, "recipients": ["holder"]}])
    for i in range(15):
        make_assignment(
            cert,
            make_employee(org, email=f"e{i}@example.test"),
            expires_on=TODAY + timedelta(days=i),
        )
    smtp_settings = _smtp_settings(settings)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            _evaluate(as_tenant, org)
            with context.tenant(org.id):
                with db.new_session() as s:  # both workers see (and race for) every row
                    ids = list(s.scalars(select(Notification.id)))
                for nid in ids:
                    deliver(org.id, nid, settings=smtp_settings, policy=FAST)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    recipients = sorted(r for m in smtp.messages for r in m.rcpt_tos)
    assert recipients == sorted(f"e{i}@example.test" for i in range(15))
    assert {n.status for n in _notes(as_tenant, org)} == {"sent"}
    assert {n.attempts for n in _notes(as_tenant, org)} == {1}


KILL_SCRIPT = """
import os, signal, sys, uuid
from certifications.automation import delivery, transports
from infra.settings import load_settings
from infra import context
from infra import database as db
from runtime import bootstrap

settings = load_settings()
bootstrap(settings)
with context.tenant(uuid.UUID(sys.argv[1])):
    with db.new_session() as s:
        out = delivery.claim(s, uuid.UUID(sys.argv[2]), db.utcnow())
        s.commit()
    transports.send(out, settings)
    os.kill(os.getpid(), signal.SIGKILL)  # dies after sending, before marking it sent
"""


def test_worker_killed_mid_delivery_resends_with_the_same_message_id(
    scenario, smtp, settings, as_tenant
):
    org, _asg = scenario
    _evaluate(as_tenant, org)
    note = _notes(as_tenant, org, recipient="ada@example.test")[0]
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(org.id), str(note.id)],
        env=SUBPROCESS_ENV,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert len(smtp.to("ada@example.test")) == 1
    (stuck,) = _notes(as_tenant, org, recipient="ada@example.test")
    assert (stuck.status, stuck.attempts) == ("sending", 1)

    smtp_settings = _smtp_settings(settings)
    with context.tenant(org.id):  # inside the lease: another worker leaves it alone
        assert deliver(org.id, note.id, settings=smtp_settings, policy=FAST).state == "skipped"
        later = db.utcnow() + delivery.LEASE + timedelta(seconds=1)
        assert (
            deliver(org.id, note.id, settings=smtp_settings, policy=FAST, now=later).state == "sent"
        )
    (done,) = _notes(as_tenant, org, recipient="ada@example.test")
    assert (done.status, done.attempts) == ("sent", 2)
    copies = smtp.to("ada@example.test")
    assert len(copies) == 2  # at-least-once: the resend is a duplicate a receiver can drop...
    assert len({m.message_id for m in copies}) == 1  # ...by its Message-ID


def test_refusing_smtp_server_retries_then_fails_visibly(
    scenario, smtp, settings, as_tenant, api_for
):
    org, asg = scenario
    smtp.refuse = True
    _evaluate(as_tenant, org)
    smtp_settings = _smtp_settings(settings)
    states = []
    for _ in range(3):
        states.extend(o.state for o in _deliver_all(org, smtp_settings))
    assert states == ["retry", "retry", "retry", "retry", "failed", "failed"]
    assert smtp.messages == []
    body = api_for(org).get(f"/notifications?assignment_id={asg.id}&status=failed").get_json()
    assert len(body["items"]) == 2
    item = body["items"][0]
    assert item["attempts"] == 3
    assert "550" in item["last_error"]
    assert item["channel"] == "email"
    # Nothing lost: once the server accepts again, a retry from `failed` is an explicit act,
    # and the row, its recipient and its error stay readable meanwhile.
    assert {i["recipient"] for i in body["items"]} == {"ada@example.test", "boss@example.test"}


def test_without_smtp_host_email_goes_to_the_log(scenario, smtp, settings, as_tenant, caplog):
    org, _asg = scenario
    _evaluate(as_tenant, org)
    no_smtp = dataclasses.replace(settings, smtp_host=None)
    with caplog.at_level("INFO", logger="certs.delivery"):
        assert {o.state for o in _deliver_all(org, no_smtp)} == {"sent"}
    assert smtp.messages == []
    assert {n.delivered_via for n in _notes(as_tenant, org)} == {"log"}
    assert "Working at Heights" in caplog.text


def test_webhook_is_signed_with_the_org_secret_and_retried_on_non_2xx(
    make_org, webhook, settings, as_tenant, make_employee, make_certification, make_assignment
):
    org = make_org()
    secret = "s3cret-" + uuid.uuid4().hex
    with context.platform(), db.new_session() as s:
        row = s.get(Organization, org.id)
        row.webhook_url, row.webhook_secret = webhook.url, SealedSecret.seal(secret)
        s.commit()
    cert = make_certification(
        org, name="Forklift", notification_rules=[{"trigger": "expired", "channels": ["webhook"]}]
    )
    asg = make_assignment(
        cert, make_employee(org, name="Bob"), expires_on=TODAY - timedelta(days=2), status="expired"
    )
    _evaluate(as_tenant, org)
    webhook.statuses = [503]
    assert [o.state for o in _deliver_all(org, settings)] == ["retry"]
    assert [o.state for o in _deliver_all(org, settings)] == ["sent"]
    first, second = webhook.received
    assert first.headers["X-Delivery-Id"] == second.headers["X-Delivery-Id"]
    assert second.verifies(secret)
    assert not second.verifies("another-secret-entirely")
    payload = second.json()
    assert payload["type"] == "certification.expired"
    assert payload["certification"]["name"] == "Forklift"
    assert payload["subject"]["name"] == "Bob"
    assert payload["assignment"]["id"] == str(asg.id)
    assert payload["date"] == (TODAY - timedelta(days=2)).isoformat()
    assert int(second.headers["X-Timestamp"]) > 0
    (note,) = _notes(as_tenant, org)
    assert (note.status, note.attempts, note.delivered_via) == ("sent", 2, "webhook")
    assert second.headers["X-Delivery-Id"] == str(note.id)


def test_a_secret_no_key_opens_fails_the_delivery_never_sends_it_unsigned(
    make_org, webhook, settings, as_tenant
):
    from cryptography.fernet import Fernet

    from tenancy.sealed import SecretBox

    org = make_org()
    lost_key = SecretBox([Fernet.generate_key().decode()])
    with context.platform(), db.new_session() as s:
        row = s.get(Organization, org.id)
        row.webhook_url = webhook.url
        row.webhook_secret = SealedSecret(lost_key.seal("s3cret-" + uuid.uuid4().hex))
        s.commit()
    cert = factories.create_certification(
        org, name="Forklift", notification_rules=[{"trigger": "expired", "channels": ["webhook"]}]
    )
    factories.create_assignment(
        cert,
        factories.create_employee(org, name="Bob"),
        expires_on=TODAY - timedelta(days=2),
        status="expired",
    )
    _evaluate(as_tenant, org)
    assert [o.state for o in _deliver_all(org, settings)] == ["retry"]
    assert webhook.received == []
    (note,) = _notes(as_tenant, org)
    assert "WEBHOOK_SECRET_KEYS" in note.last_error
    with context.platform(), db.new_session() as s:  # nothing the suite's keys cannot open
        s.get(Organization, org.id).webhook_secret = None
        s.commit()


def test_a_reminder_for_a_renewed_cycle_is_cancelled_not_sent(scenario, smtp, settings, as_tenant):
    from certifications.assignments.models import Assignment

    org, asg = scenario
    _evaluate(as_tenant, org)
    with as_tenant(org.id) as s:  # renewed after the reminder was created, before it was sent
        s.get(Assignment, asg.id).cycle = 2
        s.commit()
    assert {o.state for o in _deliver_all(org, _smtp_settings(settings))} == {"skipped"}
    assert smtp.messages == []
    assert {(n.status, n.last_error) for n in _notes(as_tenant, org)} == {
        ("cancelled", "superseded by a renewal")
    }


def test_a_refused_attempt_then_success_sends_exactly_one_email(
    scenario, smtp, settings, as_tenant
):
    org, _asg = scenario
    _evaluate(as_tenant, org)
    smtp.refuse = True
    assert {o.state for o in _deliver_all(org, _smtp_settings(settings))} == {"retry"}
    smtp.refuse = False
    assert {o.state for o in _deliver_all(org, _smtp_settings(settings))} == {"sent"}
    _evaluate(as_tenant, org)  # and a rerun after success adds nothing
    assert _deliver_all(org, _smtp_settings(settings)) == []
    assert len(smtp.to("ada@example.test")) == 1
    assert len(smtp.to("boss@example.test")) == 1
    assert {(n.status, n.attempts, n.last_error) for n in _notes(as_tenant, org)} == {
        ("sent", 2, None)
    }
