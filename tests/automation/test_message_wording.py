"""Org-local dates and plain English in emails, webhook payloads (issue 14, point 10)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from certifications.automation.messages import relative_day
from certifications.automation.models import Notification
from certifications.automation.notifications import evaluate_rules
from infra import context
from infra import database as db
from tenancy.models import Organization
from tests.support.suite import SMTP_PORT
from workers.delivery import deliver

KIRITIMATI = "Pacific/Kiritimati"  # UTC+14: its date is a day ahead of UTC's from 10:00 UTC
NOW = datetime(2026, 11, 29, 12, 5, tzinfo=UTC)  # 2026-11-30 02:05 on Kiritimati
LOCAL_TODAY = date(2026, 11, 30)
EXPIRED = {"trigger": "expired", "recipients": ["holder"]}


@pytest.mark.parametrize(
    ("offset", "words"),
    [
        (0, "today"),
        (1, "in 1 day"),
        (3, "in 3 days"),
        (-1, "yesterday"),
        (-3, "3 days ago"),
        (-400, "400 days ago"),
    ],
)
def test_relative_day_in_plain_english(offset, words):
    assert relative_day(LOCAL_TODAY + timedelta(days=offset), LOCAL_TODAY) == words


def _smtp_settings(settings):
    return dataclasses.replace(
        settings, smtp_host="127.0.0.1", smtp_port=SMTP_PORT, mail_from="certs@example.test"
    )


def _deliver_pending(org, settings):
    with context.tenant(org.id), db.new_session() as s:
        ids = list(s.scalars(select(Notification.id).where(Notification.status == "pending")))
    return [deliver(org.id, nid, settings=settings, now=NOW).state for nid in ids]


def test_a_revocation_is_dated_in_the_orgs_time_zone(
    make_org, as_tenant, smtp, webhook, settings, make_employee, make_certification, make_assignment
):
    """Revoked at 12:00 UTC on the 29th: the 30th on Kiritimati, and the email says so."""
    org = make_org(timezone=KIRITIMATI)
    with context.platform(), db.new_session() as s:
        s.get(Organization, org.id).webhook_url = webhook.url
        s.commit()
    rule = {"trigger": "revoked", "recipients": ["holder"], "channels": ["email", "webhook"]}
    cert = make_certification(org, name="Excavation Permit", notification_rules=[rule])
    holder = make_employee(org, name="Ana", email="ana@example.test")
    # Arranged directly, not through POST /revoke: its tick request would let a running worker
    # evaluate and send at the real clock's time before this test does at NOW.
    make_assignment(
        cert,
        holder,
        issued_on=date(2026, 1, 10),
        expires_on=date(2027, 1, 10),
        status="revoked",
        revoked_at=datetime(2026, 11, 29, 12, 0, tzinfo=UTC),
        revoked_reason="Card withdrawn",
    )
    with as_tenant(org.id) as s:
        evaluate_rules(s, org.id, LOCAL_TODAY, NOW)
        s.commit()
    assert _deliver_pending(org, _smtp_settings(settings)) == ["sent", "sent"]
    (mail,) = smtp.messages
    assert "Excavation Permit for Ana was revoked on 2026-11-30 (today" in mail.message["Subject"]
    assert "2026-11-29" not in mail.part("plain")
    (hook,) = webhook.received
    payload = hook.json()
    assert payload["date"] == "2026-11-30"
    assert payload["today"] == "2026-11-30"
    assert payload["timezone"] == KIRITIMATI
    assert "revoked on 2026-11-30 (today; reason: Card withdrawn)" in payload["message"]


@pytest.mark.parametrize(
    ("days", "words"), [(1, "(in 1 day)"), (0, "(today)"), (3, "(in 3 days)")], ids=str
)
def test_reminders_say_how_far_the_expiry_is(
    days,
    words,
    make_org,
    as_tenant,
    smtp,
    settings,
    make_employee,
    make_certification,
    make_assignment,
):
    org = make_org(timezone=KIRITIMATI)
    rule = {"trigger": "before_expiry", "days": 30, "recipients": ["holder"]}
    cert = make_certification(org, name="Forklift", notification_rules=[rule])
    holder = make_employee(org, name="Bo", email="bo@example.test")
    make_assignment(
        cert, holder, expires_on=LOCAL_TODAY + timedelta(days=days), status="expires_soon"
    )
    with as_tenant(org.id) as s:
        # Evaluated on an earlier day: the wording is about the day it is sent.
        evaluate_rules(s, org.id, LOCAL_TODAY - timedelta(days=5), NOW)
        s.commit()
    assert _deliver_pending(org, _smtp_settings(settings)) == ["sent"]
    (mail,) = smtp.messages
    expires = (LOCAL_TODAY + timedelta(days=days)).isoformat()
    assert f"Forklift for Bo expires on {expires} {words}" in mail.message["Subject"]
    assert "days)" not in mail.message["Subject"] or days > 1


def test_expired_reminder_says_how_long_ago(
    make_org, as_tenant, smtp, settings, make_employee, make_certification, make_assignment
):
    org = make_org(timezone=KIRITIMATI)
    cert = make_certification(org, name="Harness", notification_rules=[EXPIRED])
    holder = make_employee(org, name="Cy", email="cy@example.test")
    make_assignment(cert, holder, expires_on=LOCAL_TODAY - timedelta(days=1), status="expired")
    with as_tenant(org.id) as s:
        evaluate_rules(s, org.id, LOCAL_TODAY, NOW)
        s.commit()
    assert _deliver_pending(org, _smtp_settings(settings)) == ["sent"]
    (mail,) = smtp.messages
    assert "Harness for Cy expired on 2026-11-29 (yesterday)" in mail.message["Subject"]
