"""Notification text from hostile or sloppy input (CSV imports, revoke reasons) never wedges a
delivery: header values are folded to one line, and any failure while composing or sending is
recorded on the row (bounded attempts, then `failed`), never left `sending`."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta

from sqlalchemy import select

from certifications.automation import delivery, transports
from certifications.automation.messages import Outgoing, compose_email
from certifications.automation.models import Notification
from certifications.automation.notifications import evaluate_rules
from infra import context
from tests.automation.conftest import TODAY
from tests.support import factories
from tests.support.suite import SMTP_PORT
from workers.delivery import deliver

RULE = {"trigger": "before_expiry", "days": 30, "recipients": ["holder"], "channels": ["email"]}
FAST = delivery.RetryPolicy(max_attempts=3, base_ms=10, max_ms=20)
# (PostgreSQL stores no NUL; the composer folds it too, see the revoke reason below.)
HOSTILE = "Fork\r\nlift\x07\x0b\u2028Bcc: victim@example.test"


def _smtp_settings(settings):
    return dataclasses.replace(
        settings, smtp_host="127.0.0.1", smtp_port=SMTP_PORT, mail_from="certs@example.test"
    )


def _pending_note(make_org, as_tenant, cert_name=HOSTILE, holder="Ada\r\nLovelace"):
    org = make_org(name="Acme\nField")
    cert = factories.create_certification(org, name=cert_name, notification_rules=[RULE])
    emp = factories.create_employee(org, name=holder, email="ada@example.test")
    factories.create_assignment(cert, emp, expires_on=TODAY + timedelta(days=10))
    with as_tenant(org.id) as s:
        evaluate_rules(s, org.id, TODAY)
        s.commit()
        (note,) = s.scalars(select(Notification))
    return org, note


def _row(as_tenant, org, note):
    with as_tenant(org.id) as s:
        return s.get(Notification, note.id)


def test_crlf_in_names_sends_one_clean_email(make_org, as_tenant, smtp, settings):
    org, note = _pending_note(make_org, as_tenant)
    with context.tenant(org.id):
        outcome = deliver(org.id, note.id, settings=_smtp_settings(settings), policy=FAST)
    assert outcome.state == "sent"
    (mail,) = smtp.messages
    assert mail.rcpt_tos == ["ada@example.test"]  # no header smuggled a recipient in
    subject = str(mail.message["Subject"])
    assert "\r" not in subject
    assert "\n" not in subject
    assert "Fork lift" in subject
    assert "Ada Lovelace" in subject
    assert "[Acme Field]" in subject
    assert mail.message["Bcc"] is None
    assert "Fork lift" in mail.part("plain")
    assert _row(as_tenant, org, note).status == "sent"


def test_crlf_in_a_revoke_reason_keeps_the_subject_one_line(settings):
    out = Outgoing(
        notification_id=uuid.uuid4(),
        org_id=uuid.uuid4(),
        org_name="Acme",
        attempts=1,
        channel="email",
        recipient="ada@example.test",
        trigger="revoked",
        cycle=1,
        triggered_on=TODAY,
        today=TODAY,
        timezone="UTC",
        assignment_id=uuid.uuid4(),
        status="revoked",
        issued_on=TODAY - timedelta(days=30),
        expires_on=None,
        revoked_on=TODAY,
        revoked_reason="forged\r\nBcc: victim@example.test\x00\r\n\r\nbody",
        certification_id=uuid.uuid4(),
        certification_name="Crane",
        subject_type="employee",
        subject_id=uuid.uuid4(),
        subject_name="Ada",
        webhook_url=None,
        webhook_secret=None,
    )
    msg = compose_email(out, settings)
    subject = str(msg["Subject"])
    assert subject == (
        f"[Acme] Crane for Ada was revoked on {TODAY.isoformat()} "
        "(today; reason: forged Bcc: victim@example.test body)"
    )
    assert msg["Bcc"] is None
    wire = msg.as_bytes()
    assert b"\nBcc:" not in wire


def test_an_unexpected_error_while_composing_is_recorded_then_fails(
    make_org, as_tenant, settings, monkeypatch
):
    org, note = _pending_note(make_org, as_tenant, cert_name="Crane", holder="Ada")

    def broken(*_a, **_k):
        raise ValueError("the email library refused a header")

    monkeypatch.setattr(transports, "compose_email", broken)
    states = []
    with context.tenant(org.id):
        for _ in range(4):
            states.append(
                deliver(org.id, note.id, settings=_smtp_settings(settings), policy=FAST).state
            )
            row = _row(as_tenant, org, note)
            assert row.status != "sending", "a failed compose left the row sending"
            assert "header" in (row.last_error or "")
    assert states == ["retry", "retry", "failed", "skipped"]
    row = _row(as_tenant, org, note)
    assert (row.status, row.attempts) == ("failed", 3)
    assert "ValueError" in row.last_error
